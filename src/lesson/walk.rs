//! The lesson itself: its server and its client, one call at a time, in the order the two
//! programs make them, on one real connection over loopback.

use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use socket2::{SockAddr, Socket, Type};

use super::calls::{self, loopback};
use super::teacher::{Teacher, Who::*};

pub(super) fn run(t: &mut Teacher) -> Result<()> {
    t.title(
        "The lesson's server and client, one call at a time",
        "课上的服务器和客户端，一次一个调用",
    );
    t.say(
        "A socket is a phone. The server buys one, plugs in a card (its address), switches \
         it on and waits for a call; the client buys one and dials. Every call below is made \
         on a real socket on loopback (127.0.0.1: this machine talking to itself, through \
         the same kernel code as a real network).",
        "套接字就像手机。服务器买手机、插卡（地址）、开机、等电话；客户端买手机、拨号。\
         下面每一步都在本机回环地址（127.0.0.1：本机和自己通话，走的是和真实网络一样的\
         内核代码）上的真实套接字上执行。",
    );
    let (phone, addr) = server_opens(t)?;
    let client = client_dials(t, &addr)?;
    let conn = server_answers(t, &phone)?;
    talk(t, &client, &conn)?;
    hang_up(t, client, conn, phone)
}

fn server_opens(t: &mut Teacher) -> Result<(Socket, SockAddr)> {
    t.step(Server, "buy a phone: socket()", "买手机：socket()");
    let phone = calls::socket(t, "phone", Type::STREAM)?;
    let fd = phone.as_raw_fd();
    t.say(
        &format!(
            "AF_INET: IPv4 addresses; SOCK_STREAM: a stream of bytes (TCP). fd {fd} is a \
             file descriptor, the number the kernel gives the new socket: every later call \
             names the socket by it (0, 1 and 2 are stdin, stdout and stderr)."
        ),
        &format!(
            "AF_INET：IPv4 地址；SOCK_STREAM：字节流（TCP）。fd {fd} 是文件描述符，内核给新\
             套接字的编号：之后的每个调用都用它指明是哪个套接字（0、1、2 是标准输入、标准\
             输出和标准错误）。"
        ),
    );
    t.pause();
    t.step(
        Server,
        "allow the number to be used again at once: SO_REUSEADDR",
        "允许号码马上重用：SO_REUSEADDR",
    );
    calls::reuseaddr(t, "phone", &phone)?;
    t.pause();
    t.step(Server, "plug in the card: bind()", "插卡：bind()");
    let addr = calls::bind(t, "phone", &phone, &loopback()).context("bind")?;
    t.say(
        "Port 0 asks the kernel for a free port; the lesson uses a fixed one.",
        "端口 0 让内核挑一个空闲端口；课上用的是固定端口。",
    );
    t.pause();
    t.step(Server, "switch it on: listen()", "开机：listen()");
    calls::listen(t, "phone", &phone, 5)?;
    t.say(
        "5 is the backlog: how many calls may wait to be answered.",
        "5 是 backlog：最多几个来电可以排队等待接听。",
    );
    t.pause();
    Ok((phone, addr))
}

fn client_dials(t: &mut Teacher, addr: &SockAddr) -> Result<Socket> {
    t.step(Client, "buy a phone: socket()", "买手机：socket()");
    let client = calls::socket(t, "client", Type::STREAM)?;
    t.pause();
    t.step(Client, "dial the number: connect()", "拨号：connect()");
    calls::connect(t, "client", &client, addr)?;
    t.say(
        "connect() returns once the kernels have shaken hands (SYN, SYN-ACK, ACK): the call \
         now waits in the server's queue, even before the server answers it.",
        "三次握手（SYN、SYN-ACK、ACK）完成后 connect() 就返回了：这通电话已在服务器的队列\
         里等着，服务器还没接听。",
    );
    t.pause();
    Ok(client)
}

fn server_answers(t: &mut Teacher, phone: &Socket) -> Result<Socket> {
    t.step(Server, "wait for a call: accept()", "等电话：accept()");
    let conn = calls::accept(t, "phone", phone)?;
    t.say(
        "accept() gives a new socket for this one call (conn); the phone keeps listening \
         for the next.",
        "accept() 为这通电话返回一个新的套接字 conn；原来的手机继续等下一个来电。",
    );
    t.pause();
    Ok(conn)
}

fn talk(t: &mut Teacher, client: &Socket, conn: &Socket) -> Result<()> {
    t.step(Client, "send a message: send()", "发消息：send()");
    calls::send(t, "client", client, b"hello").context("send")?;
    t.pause();
    t.step(Server, "receive the message: recv()", "收消息：recv()");
    let data = calls::recv(t, "conn", conn, 1024, 0).context("recv")?;
    t.say(
        "1024 is the most recv() may return, not what it waits for.",
        "1024 是 recv() 最多返回的字节数，不是它要等够的字节数。",
    );
    t.pause();
    t.step(Server, "answer: send()", "回消息：send()");
    calls::send(t, "conn", conn, &data.to_ascii_uppercase()).context("send")?;
    t.pause();
    t.step(Client, "receive the answer: recv()", "收回复：recv()");
    calls::recv(t, "client", client, 1024, 0).context("recv")?;
    t.pause();
    Ok(())
}

fn hang_up(t: &mut Teacher, client: Socket, conn: Socket, phone: Socket) -> Result<()> {
    t.step(Client, "hang up: close()", "挂电话：close()");
    calls::close(t, "client", client);
    t.say(
        "close() makes the kernel send a FIN, TCP's \"I will send no more\"; the other side's \
         kernel answers it by itself, before the server calls anything.",
        "close() 让内核发出 FIN，也就是 TCP 的“我不再发送了”；对方的内核自己就会应答，\
         不等服务器调用任何函数。",
    );
    t.pause();
    t.step(
        Server,
        "recv() returns b'' (0 bytes): the other side hung up",
        "recv() 返回 b''（0 字节）：对方挂了",
    );
    calls::recv(t, "conn", &conn, 1024, 0).context("recv")?;
    t.python("if not data: break");
    t.say(
        "That break ends the communication loop; netecho lesson loops shows it going round \
         with two messages, and the connection loop serving a second client.",
        "这个 break 结束通信循环；netecho lesson loops 演示两条消息的通信循环，以及连接\
         循环接待第二个客户端。",
    );
    t.pause();
    t.step(Server, "hang up: close()", "挂电话：close()");
    calls::close(t, "conn", conn);
    t.pause();
    t.step(Server, "switch off: close()", "关机：close()");
    calls::close(t, "phone", phone);
    t.blank_line();
    t.say(
        "On demand: netecho lesson --list shows what can go wrong, one call at a time.",
        "更多：netecho lesson --list 列出会出问题的地方，一样一步一步演示。",
    );
    Ok(())
}
