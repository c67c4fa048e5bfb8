//! CPU and memory percentages from the engine's stats, computed the way
//! `docker stats` computes them.

use crate::model::StatsSample;

/// Percent of one core (200 = two cores busy).
pub fn cpu_percent(s: &StatsSample) -> f64 {
    let cpu = s.cpu_total.saturating_sub(s.precpu_total) as f64;
    let system = s.system.saturating_sub(s.presystem) as f64;
    if cpu > 0.0 && system > 0.0 {
        cpu / system * f64::from(s.online_cpus.max(1)) * 100.0
    } else {
        0.0
    }
}

/// Percent of the container's memory limit (the host's memory when unlimited).
pub fn memory_percent(s: &StatsSample) -> Option<f64> {
    if s.memory_limit == 0 {
        return None;
    }
    let used =
        if s.memory_inactive_file < s.memory_usage { s.memory_usage - s.memory_inactive_file } else { s.memory_usage };
    Some(used as f64 / s.memory_limit as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_busy_core_is_100_percent() {
        // 2 cores; the container used 1 s of CPU while the system counted 2 s.
        let s = StatsSample {
            cpu_total: 2_000,
            precpu_total: 1_000,
            system: 12_000,
            presystem: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        assert!((cpu_percent(&s) - 100.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&StatsSample::default()), 0.0, "no previous reading yet");
    }

    #[test]
    fn memory_leaves_out_the_inactive_cache() {
        let s = StatsSample { memory_usage: 60, memory_inactive_file: 10, memory_limit: 100, ..Default::default() };
        assert_eq!(memory_percent(&s), Some(50.0));
        assert_eq!(memory_percent(&StatsSample::default()), None);
    }
}
