//! Values picked by name from a fixed list (a protocol, a server model, an output format),
//! described in plain data so the command line can offer them, list them in help, complete
//! them and print them in man pages, without the engine knowing how.

/// An enum whose values have names a user types and a line of help each.
pub(crate) trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];

    /// The name typed on the command line and shown in output.
    fn name(self) -> &'static str;

    /// One line on what the value does; empty when the name says it all.
    fn help(self) -> &'static str;

    /// The value named `name` exactly, as typed.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// `name` is not one of `T`'s values: the error of every [`Choice`]'s `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownChoice {
    pub name: String,
    pub expected: Vec<&'static str>,
}

impl UnknownChoice {
    pub(crate) fn of<T: Choice>(name: &str) -> UnknownChoice {
        UnknownChoice {
            name: name.to_string(),
            expected: T::ALL.iter().map(|v| v.name()).collect(),
        }
    }
}

impl std::fmt::Display for UnknownChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "'{}' is not one of {}",
            self.name,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownChoice {}

/// Implements `FromStr` for a [`Choice`] through its names.
macro_rules! from_str_by_name {
    ($t:ty) => {
        impl std::str::FromStr for $t {
            type Err = $crate::choice::UnknownChoice;
            fn from_str(name: &str) -> Result<Self, Self::Err> {
                <$t as $crate::choice::Choice>::from_name(name)
                    .ok_or_else(|| $crate::choice::UnknownChoice::of::<$t>(name))
            }
        }
    };
}
pub(crate) use from_str_by_name;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Proto;
    use crate::report::Format;
    use crate::server::Model;
    use crate::service::echo::Transform;
    use crate::transport::framing::Framing;

    fn round_trip<T: Choice + std::str::FromStr + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(v.name().parse::<T>().ok(), Some(v), "{}", v.name());
        }
        assert!("no-such-value".parse::<T>().is_err());
    }

    #[test]
    fn every_name_parses_back_to_its_value() {
        round_trip::<Proto>();
        round_trip::<Model>();
        round_trip::<crate::server::Sched>();
        round_trip::<Transform>();
        round_trip::<Framing>();
        round_trip::<Format>();
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let err = "tc".parse::<Framing>().unwrap_err();
        assert_eq!(err.to_string(), "'tc' is not one of none, line, length");
    }
}
