//! The Ferry endpoint agent: one persistent channel to the hub per device, and the client
//! operations it runs.
//!
//! * [`session`] keeps the channel (WebSocket, or long polls where WebSockets are refused),
//!   reconnecting with backoff and obeying the hub's paced admission, and decides what to do
//!   with each operation using the [`journal`].
//! * [`runner`] maps operation kinds to the [`exec`]utors, which run processes and never
//!   pass untrusted text through a shell.
//! * [`channel`] is the WebSocket way to the hub; HTTP calls go through `ferry-client`.

pub mod channel;
pub mod cmdline;
pub mod config;
pub mod exec;
pub mod inventory;
pub mod journal;
pub mod moments;
pub mod runner;
pub mod session;
