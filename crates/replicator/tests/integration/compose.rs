//! A replica of a compose container is one more container of its service.

use http::{Method, StatusCode};

use crate::common::{call, group, image, inspect, write_file, Scope};

fn compose(dir: &std::path::Path, project: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("docker-compose")
        .current_dir(dir)
        .args(["-p", project])
        .args(args)
        .output()
        .expect("docker-compose runs");
    assert!(out.status.success(), "docker-compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn compose_sees_the_replica_as_one_more_container_of_its_service() {
    let scope = Scope::new("compose");
    let project = scope.id.replace('-', "");
    let dir = tempfile::tempdir().unwrap();
    let label = scope.label();
    let (key, value) = label.split_once('=').unwrap();
    write_file(
        &dir.path().join("docker-compose.yml"),
        &format!(
            "version: '2.4'\n\
             services:\n  web:\n    image: {image}\n    command: httpd -f -p 8080\n    labels:\n      replicator.enable: 'true'\n      {key}: '{value}'\n\
             networks:\n  default:\n    labels:\n      {key}: '{value}'\n",
            image = image()
        ),
    );
    compose(dir.path(), &project, &["up", "-d"]);
    let server = scope.server(&[]);
    let first = format!("{project}_web_1");

    let r = call(&server, Method::POST, &format!("/v1/containers/{first}/replicas"), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    assert_eq!(body["group"], format!("{project}_web"));
    assert_eq!(body["replicas"][0]["name"], format!("{project}_web_2"));
    let replica = inspect(body["replicas"][0]["id"].as_str().unwrap());
    assert_eq!(replica["Config"]["Labels"]["com.docker.compose.container-number"], "2");
    assert_eq!(replica["Config"]["Labels"]["com.docker.compose.service"], "web");

    let ps = compose(dir.path(), &project, &["ps", "-q"]);
    assert_eq!(ps.lines().count(), 2, "docker-compose ps lists the replica: {ps}");
    let group = group(&server, &format!("{project}_web")).await;
    assert_eq!(group["kind"], "compose");
    assert_eq!(group["replicas"], 2);

    compose(dir.path(), &project, &["down"]);
    assert!(scope.containers().is_empty(), "docker-compose down removed the replica too");
}
