//! The xtask library: machinery that several tasks (and their tests) share, such as the real filesystem matrix.

pub mod db_servers;
pub mod fs_matrix;
pub mod nfs;
pub mod signals;
pub mod venv;
