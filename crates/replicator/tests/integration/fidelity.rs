//! A clone is faithful: checked field by field on what `docker inspect` says.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::common::{docker_try, eventually, free_port, image, inspect, Scope};

fn ip_on(container: &Value, network: &str) -> String {
    container["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_clone_copies_config_resources_networks_and_volumes() {
    let scope = Scope::new("fidelity");
    let front = scope.network("front");
    let back = scope.network("back");
    let volume = scope.volume("data");
    let bind_dir = tempfile::tempdir().unwrap();
    let www = scope.name("www");
    let api = scope.name("api");
    let port = free_port();
    let (bind, vol, publish) = (
        format!("{}:/bind:ro", bind_dir.path().display()),
        format!("{volume}:/data"),
        format!("127.0.0.1:{port}:8080"),
    );
    let source_id = scope.run(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "app=shop",
            "--network",
            &front,
            "--network-alias",
            &www,
            "-e",
            "GREETING=hello",
            "-w",
            "/tmp",
            "--user",
            "nobody",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "64",
            "--ulimit",
            "nofile=1024:2048",
            "--restart",
            "on-failure:3",
            "--log-opt",
            "max-size=1m",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "MKNOD",
            "--device",
            "/dev/null:/dev/xnull",
            "--security-opt",
            "no-new-privileges",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "7",
            "--health-cmd",
            "true",
            "--health-interval",
            "5s",
            "-v",
            &vol,
            "-v",
            &bind,
            "-p",
            &publish,
            "--expose",
            "9000",
            "--entrypoint",
            "sh",
            image(),
            "-c",
            "httpd -f -p 8080",
        ],
    );
    crate::common::docker(&["network", "connect", "--alias", &api, &back, &source_id]);
    let server = scope.server(&[]);

    let r = server
        .client()
        .request(Method::POST, &format!("/v1/containers/{}/replicas", scope.name("web")), None)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    let notes = body["notes"].to_string();
    assert!(notes.contains("8080/tcp") && notes.contains(&port.to_string()), "the ephemeral port is reported: {notes}");
    let clone_id = body["replicas"][0]["id"].as_str().unwrap().to_owned();
    let (src, clone) = (inspect(&source_id), inspect(&clone_id));

    assert_eq!(clone["Name"], format!("/{}-2", scope.name("web")));
    assert_eq!(clone["State"]["Status"], "running");
    for key in [
        "Image",
        "Cmd",
        "Entrypoint",
        "Env",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Healthcheck",
        "StopSignal",
        "StopTimeout",
    ] {
        assert_eq!(clone["Config"][key], src["Config"][key], "Config.{key}");
    }
    for (k, v) in src["Config"]["Labels"].as_object().unwrap() {
        assert_eq!(&clone["Config"]["Labels"][k], v, "label {k}");
    }
    for key in replicator::rules::plan::HOST_SETTINGS_KEPT {
        assert_eq!(clone["HostConfig"][key], src["HostConfig"][key], "HostConfig.{key}");
    }
    assert_eq!(clone["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_ne!(clone["Config"]["Hostname"], src["Config"]["Hostname"], "the clone has its own hostname");
    assert_eq!(clone["Config"]["Hostname"].as_str().unwrap(), &clone_id[..12]);

    // The named volume is shared, not copied.
    let volume_of = |c: &Value| {
        c["Mounts"].as_array().unwrap().iter().find(|m| m["Destination"] == "/data").map(|m| m["Name"].clone())
    };
    assert_eq!(volume_of(&clone), Some(Value::String(volume.clone())));

    // The fixed host port became an ephemeral one.
    assert_eq!(clone["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"], "");
    let published = clone["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"].as_str().unwrap().to_owned();
    assert!(!published.is_empty() && published != port.to_string(), "published on {published}");

    // Both networks, user aliases kept, the source's own alias and address not.
    for (net, alias) in [(&front, &www), (&back, &api)] {
        let ep = &clone["NetworkSettings"]["Networks"][net.as_str()];
        let aliases: Vec<&str> = ep["Aliases"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(aliases.contains(&alias.as_str()), "{net}: {aliases:?}");
        assert!(!aliases.contains(&&source_id[..12]), "{net}: {aliases:?}");
        assert_ne!(ip_on(&clone, net), ip_on(&src, net), "{net}");
    }

    // The alias on the second network reaches the clone from another container.
    let clone_ip = ip_on(&clone, &back);
    let label = scope.label();
    eventually("the clone's address behind the alias", Duration::from_secs(15), || {
        let out =
            docker_try(&["run", "--rm", "--label", &label, "--network", &back, image(), "nslookup", &api]).ok()?;
        out.contains(&clone_ip).then_some(())
    });
}

/// Without Traefik here, what can be checked is what Traefik would read:
/// the clone's labels name the original's implicit service and its port.
#[tokio::test]
async fn a_clone_of_a_container_with_traefik_routers_only_names_the_originals_service() {
    let scope = Scope::new("traefik");
    scope.run(
        "web",
        &[
            "--label",
            "replicator.enable=true",
            "--label",
            "traefik.enable=true",
            "--label",
            "traefik.http.routers.shop.rule=Host(`shop.example`)",
            "--expose",
            "8080",
            image(),
            "httpd",
            "-f",
            "-p",
            "8080",
        ],
    );
    let name = scope.name("web");
    let server = scope.server(&[]);
    let r = crate::common::call(&server, Method::POST, &format!("/v1/containers/{name}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let clone = r.json()["replicas"][0]["id"].as_str().unwrap().to_owned();
    let labels = inspect(&clone)["Config"]["Labels"].clone();
    assert_eq!(labels["traefik.http.routers.shop.service"], Value::String(name.clone()));
    assert_eq!(labels[format!("traefik.http.services.{name}.loadbalancer.server.port")], "8080");
    assert_eq!(labels["traefik.http.routers.shop.rule"], "Host(`shop.example`)", "the router itself is unchanged");
}
