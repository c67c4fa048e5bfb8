//! The scenarios that make sense on Podman, run against its Docker-compatible
//! API (served by `scripts/prepare` on a socket of its own): the same test
//! bodies as on Docker, with the engine as their parameter.

use crate::common::Engine;

/// A test for each scenario, run on Podman.
macro_rules! on_podman {
    ($($test:ident => $scenario:path;)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                $scenario(Engine::Podman).await;
            }
        )*
    };
}

on_podman! {
    podman_the_compatibility_route_answers_like_the_original => crate::answers::compatibility_route;
    podman_a_clone_serves_on_its_own_published_port => crate::answers::clone_serves_on_its_own_port;
    podman_the_cli_client_lists_scales_and_replicates => crate::groups::cli_lists_scales_and_replicates;
    podman_a_member_killed_outside_replicator_is_seen_from_the_events => crate::groups::killed_member_seen_from_events;
    podman_a_pushed_load_grows_the_group_and_idleness_brings_it_back => crate::autoscale::pushed_load_up_and_down;
}
