//! End-to-end tests: a real gateway, real child processes, independent clients.
