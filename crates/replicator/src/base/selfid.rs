//! Finding replicator's own container id, so it never replicates itself.
//!
//! The engine bind-mounts `/etc/hostname` and friends from
//! `.../containers/<id>/`, which shows in `/proc/self/mountinfo` on both
//! cgroup v1 and v2; `/proc/self/cgroup` names the id on cgroup v1.

/// Our container's full id, if we run in a Docker container.
pub fn own_container_id() -> Option<String> {
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    id_in_mountinfo(&read("/proc/self/mountinfo")).or_else(|| id_in_cgroup(&read("/proc/self/cgroup")))
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn id_in_mountinfo(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| l.contains("/etc/hostname"))
        .flat_map(|l| l.split(['/', ' ']))
        .find(|part| is_full_id(part))
        .map(str::to_owned)
}

fn id_in_cgroup(text: &str) -> Option<String> {
    text.lines().flat_map(|l| l.split(['/', '-', '.', ':'])).find(|part| is_full_id(part)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "9f2c1e7b4d3a5f6e8c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

    #[test]
    fn finds_the_id_in_mountinfo() {
        let text = format!(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 8:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(id_in_mountinfo(&text).as_deref(), Some(ID));
    }

    #[test]
    fn finds_the_id_in_cgroup_v1() {
        assert_eq!(id_in_cgroup(&format!("12:memory:/docker/{ID}\n")).as_deref(), Some(ID));
        assert_eq!(id_in_cgroup(&format!("0::/system.slice/docker-{ID}.scope\n")).as_deref(), Some(ID));
    }

    #[test]
    fn a_host_process_has_no_id() {
        assert_eq!(id_in_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
        assert_eq!(id_in_cgroup("0::/user.slice/session-1.scope\n"), None);
    }
}
