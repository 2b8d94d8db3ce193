//! The lesson's two languages.

use crate::choice::{Choice, from_str_by_name};

/// The lesson's language: English, or Chinese as the lesson was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    En,
    Zh,
}

impl Choice for Lang {
    const ALL: &'static [Lang] = &[Lang::En, Lang::Zh];

    fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "Chinese (中文), the lesson's language",
        }
    }
}

from_str_by_name!(Lang);

impl Lang {
    /// The text in this language.
    pub(crate) fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}
