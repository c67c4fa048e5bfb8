//! Integration tests against the real Docker engine (see common/ for the harness).

mod common;

mod access;
mod alerting;
mod answers;
mod autoscale;
mod ceilings;
mod cluster;
mod coldpath;
mod compose;
mod contract;
mod doors;
mod faults;
mod fidelity;
mod front;
mod groups;
mod haproxy_caddy;
mod hardening;
mod lease;
mod lifetimes;
mod mtls;
mod nginx_follower;
mod operator;
mod parity;
mod podman;
mod remote;
mod schedules;
mod serving;
mod sleep;
mod swarm;
mod system;
mod takeover;
mod warm;
