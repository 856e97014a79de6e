//! `artifactfs status`, a front end beside `mount` and `serve`: each mount answers on a unix
//! socket with a JSON snapshot of its core ([`socket`]; the snapshot itself is
//! [`crate::stats::Status`]), and the command finds the mounts, asks them and prints a few
//! aligned lines per mount or the JSON ([`command`]).

pub mod command;
pub mod socket;
