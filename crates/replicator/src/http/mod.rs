//! Everything that speaks HTTP: the mutual-TLS [`api`], the plain [`admin`]
//! listener (health, metrics, dashboard), the [`wake`] listener that holds
//! requests for sleeping groups, and the bounded [`listener`] all three are
//! served by. Handlers are thin: they validate and call the service.

pub mod admin;
pub mod api;
pub mod listener;
pub mod wake;
pub mod wake_page;
