//! The autoscaling decision, pure: observed values in, a replica count out.
//!
//! It follows the Kubernetes Horizontal Pod Autoscaler: desired =
//! ceil(replicas × average / target) within a ±10 % tolerance, clamped to the
//! bounds; members without a fresh value count as 0 when scaling up and as
//! at target when scaling down; scale-ups apply at once, scale-downs only to
//! the highest recommendation seen during the stabilization window. Then, as
//! the Swarm autoscalers do, each change is limited to a step and kept apart
//! from the previous change in the same direction by a cool-down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rules::policy::Policy;

/// No change while |average / target − 1| stays within this.
pub const TOLERANCE: f64 = 0.1;

/// What the decision needs to know about a group's autoscaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Per-member value the average is steered to; positive.
    pub target: f64,
    /// Fewest members a decision leaves.
    pub min: u32,
    /// Most members a decision asks for (`min` wins if it is higher).
    pub max: u32,
    /// Most members added by one decision; `None`: max(4, current), as HPA.
    pub step_up: Option<u32>,
    /// Most members removed by one decision; `None`: unbounded.
    pub step_down: Option<u32>,
    /// Least time between two scale-ups.
    pub cooldown_up: Duration,
    /// Least time between two scale-downs.
    pub cooldown_down: Duration,
    /// With `min` 0: at or below it the group sleeps, above it a sleeping group wakes.
    pub activation: f64,
    /// Burst mode's window (zero: off): a recommendation of at least twice
    /// the current size scales up at once, past step and cool-down, and no
    /// scale-down happens until a whole window passes without one.
    pub burst_window: Duration,
}

impl Limits {
    /// A group's policy as the decision reads it: a cool-down down defaults
    /// to the stabilization window, and burst mode's window applies only
    /// where the policy allows bursts.
    pub fn from_policy(policy: &Policy, stabilization: Duration, burst_window: Duration) -> Self {
        Self {
            target: policy.target,
            min: policy.min,
            max: policy.max,
            step_up: policy.step_up,
            step_down: policy.step_down,
            cooldown_up: policy.cooldown_up.unwrap_or(Duration::ZERO),
            cooldown_down: policy.cooldown_down.unwrap_or(stabilization),
            activation: policy.activation,
            burst_window: if policy.burst { burst_window } else { Duration::ZERO },
        }
    }

    /// Bounds and target only: no step limit, no cool-down.
    pub const fn new(target: f64, min: u32, max: u32) -> Self {
        Self {
            target,
            min,
            max,
            step_up: None,
            step_down: None,
            cooldown_up: Duration::ZERO,
            cooldown_down: Duration::ZERO,
            activation: 0.0,
            burst_window: Duration::ZERO,
        }
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Running members when evaluated.
    pub from: u32,
    /// Members to run now: after stabilization, step and cool-down.
    pub to: u32,
    /// The recommendation before stabilization.
    pub desired: u32,
    /// The per-member average the decision used (missing values adjusted).
    pub average: Option<f64>,
    /// Every rule that shaped `to`, in words.
    pub reason: String,
}

/// The recommendation for `current` members whose fresh values are `values`
/// (`None` where a member has none).
pub fn recommend(current: u32, values: &[Option<f64>], limits: &Limits) -> (u32, Option<f64>, String) {
    let clamp = |n: u32| n.clamp(limits.min, limits.max.max(limits.min));
    let fresh: Vec<f64> = values.iter().flatten().copied().collect();
    if limits.min == 0 {
        if let Some(verdict) = sleep_or_wake(current, values.len(), &fresh, limits) {
            return verdict;
        }
    }
    if fresh.is_empty() || current == 0 {
        let reason = match clamp(current) {
            n if n == current => "no fresh metric value".into(),
            n => format!("no fresh metric value; {current} members is outside the bounds, {n} is within"),
        };
        return (clamp(current), None, reason);
    }
    let missing = values.len() - fresh.len();
    let sum: f64 = fresh.iter().sum();
    let raw_ratio = sum / fresh.len() as f64 / limits.target;
    // HPA's conservative rule: the missing count against the direction of change.
    let assumed = if raw_ratio > 1.0 { 0.0 } else { limits.target };
    let average = (sum + assumed * missing as f64) / values.len() as f64;
    let ratio = average / limits.target;
    let within = (ratio - 1.0).abs() <= TOLERANCE || (raw_ratio > 1.0) != (ratio > 1.0);
    if within {
        let to = clamp(current);
        let reason = if to == current {
            format!("average {} within 10% of target {}", fixed(average), plain(limits.target))
        } else {
            format!("bounds [{}, {}]", limits.min, limits.max)
        };
        return (to, Some(average), reason);
    }
    // HPA: the members that were measured (missing ones included, ignored ones not).
    let wanted = (values.len() as f64 * ratio).ceil();
    let desired = clamp(if wanted >= f64::from(u32::MAX) { u32::MAX } else { wanted as u32 });
    let reason = format!("average {} vs target {} over {current} members", fixed(average), plain(limits.target));
    (desired, Some(average), reason)
}

/// A group allowed to sleep (min 0): asleep (`current` 0), a value above
/// the activation wakes it to one member; awake, every member measured at
/// or below the activation puts it to sleep (the stabilization window and
/// cool-down still apply). `None`: the usual rules decide.
fn sleep_or_wake(current: u32, measured: usize, fresh: &[f64], limits: &Limits) -> Option<(u32, Option<f64>, String)> {
    let activation = plain(limits.activation);
    let highest = fresh.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if current == 0 {
        return Some(if fresh.is_empty() || highest <= limits.activation {
            (0, None, format!("asleep: no value above the activation {activation}"))
        } else {
            (1, Some(highest), format!("value {} above the activation {activation}: waking", fixed(highest)))
        });
    }
    let all_quiet = !fresh.is_empty() && fresh.len() == measured && highest <= limits.activation;
    all_quiet.then(|| {
        let average = fresh.iter().sum::<f64>() / fresh.len() as f64;
        (0, Some(average), format!("every member at or below the activation {activation}: going to sleep"))
    })
}

/// HPA's rule for members that are running but not ready (or, for CPU,
/// still initializing): they count as 0 when the ready members ask to grow,
/// and are left out when they ask to shrink, so a replica that is still
/// starting neither hides load nor invites a runaway scale-up.
pub fn hpa_values(ready: &[Option<f64>], unready: usize, target: f64) -> Vec<Option<f64>> {
    let fresh: Vec<f64> = ready.iter().flatten().copied().collect();
    let grows = !fresh.is_empty() && fresh.iter().sum::<f64>() / fresh.len() as f64 > target;
    let mut values = ready.to_vec();
    if grows {
        values.extend(std::iter::repeat_n(Some(0.0), unready));
    }
    values
}

/// Whether a number reads better in scientific notation: a pushed 1e308
/// must not print 309 digits in a reason.
fn is_extreme(x: f64) -> bool {
    x != 0.0 && !(1e-3..1e6).contains(&x.abs())
}

/// An average for a reason: two decimals, or `1.000e308` beyond the usual range.
fn fixed(x: f64) -> String {
    if is_extreme(x) {
        format!("{x:.3e}")
    } else {
        format!("{x:.2}")
    }
}

/// A target for a reason: as written, or `1.000e308` beyond the usual range.
fn plain(x: f64) -> String {
    if is_extreme(x) {
        format!("{x:.3e}")
    } else {
        x.to_string()
    }
}

/// Recommendations over the stabilization window: scale-downs go no lower
/// than the highest of them, so a short dip never removes replicas.
#[derive(Debug, Clone)]
pub struct Stabilizer {
    window: Duration,
    history: VecDeque<(Instant, u32)>,
}

impl Stabilizer {
    /// Remembers recommendations for `window`; zero makes scale-downs immediate.
    pub fn new(window: Duration) -> Self {
        Self { window, history: VecDeque::new() }
    }

    /// Forgets the window's recommendations but `current` at `now`: a group
    /// just woken must not go back to sleep on what was said while it slept.
    pub fn restart(&mut self, now: Instant, current: u32) {
        self.history.clear();
        self.history.push_back((now, current));
    }

    /// Records `desired` at `now` and returns the count to apply.
    pub fn stabilize(&mut self, now: Instant, current: u32, desired: u32) -> u32 {
        while self.history.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.window) {
            self.history.pop_front();
        }
        self.history.push_back((now, desired));
        if desired >= current {
            return desired;
        }
        let highest = self.history.iter().map(|(_, d)| *d).max().unwrap_or(desired);
        highest.min(current)
    }
}

/// What the decision remembers about one group between evaluations.
#[derive(Debug, Clone)]
pub struct Memory {
    stabilizer: Stabilizer,
    /// The size at the previous evaluation: a wake (0, then more) restarts the window.
    last_size: Option<u32>,
    last_up: Option<Instant>,
    last_down: Option<Instant>,
    /// The last time a recommendation was at least twice the size (burst mode).
    last_burst: Option<Instant>,
}

impl Memory {
    /// A group's first memory: no previous change, so no cool-down; `window` is the stabilization window.
    pub fn new(window: Duration) -> Self {
        Self { stabilizer: Stabilizer::new(window), last_size: None, last_up: None, last_down: None, last_burst: None }
    }
}

/// Burst mode (Knative's panic mode): while a recommendation of at least
/// twice the size was seen within the window, grow at once to what is
/// recommended and never shrink. `None`: not bursting, the usual rules decide.
fn burst(memory: &mut Memory, now: Instant, current: u32, desired: u32, limits: &Limits) -> Option<(u32, String)> {
    if limits.burst_window.is_zero() || current == 0 {
        return None;
    }
    if desired >= current.saturating_mul(2) {
        memory.last_burst = Some(now);
    }
    let since = memory.last_burst?;
    if now.saturating_duration_since(since) >= limits.burst_window {
        memory.last_burst = None;
        return None;
    }
    let window = crate::base::duration::format(limits.burst_window);
    Some(if desired > current {
        (desired, format!("burst: {desired} wanted, at least twice {current}; scaling up at once"))
    } else {
        (current, format!("burst: no scale-down until {window} pass without one"))
    })
}

/// One evaluation: recommend, stabilize, limit the step, respect the cool-downs.
pub fn decide(memory: &mut Memory, now: Instant, current: u32, values: &[Option<f64>], limits: &Limits) -> Decision {
    if memory.last_size == Some(0) && current > 0 {
        memory.stabilizer.restart(now, current);
    }
    memory.last_size = Some(current);
    let (desired, average, mut reason) = recommend(current, values, limits);
    if let Some((to, why)) = burst(memory, now, current, desired, limits) {
        memory.stabilizer.stabilize(now, current, desired);
        if to > current {
            memory.last_up = Some(now);
        }
        return Decision { from: current, to, desired, average, reason: format!("{reason}; {why}") };
    }
    let mut to = memory.stabilizer.stabilize(now, current, desired);
    if to != desired {
        reason = format!("{reason}; holding at {to} for the stabilization window");
    }
    if to > current {
        let step = limits.step_up.unwrap_or(current.max(4));
        if to - current > step {
            to = current + step;
            reason = format!("{reason}; at most +{step} per decision");
        }
        if memory.last_up.is_some_and(|t| now.saturating_duration_since(t) < limits.cooldown_up) {
            to = current;
            reason = format!("{reason}; scale-up cooling down");
        }
    } else if to < current {
        let step = limits.step_down.unwrap_or(current);
        if current - to > step {
            to = current - step;
            reason = format!("{reason}; at most -{step} per decision");
        }
        if memory.last_down.is_some_and(|t| now.saturating_duration_since(t) < limits.cooldown_down) {
            to = current;
            reason = format!("{reason}; scale-down cooling down");
        }
    }
    match to.cmp(&current) {
        std::cmp::Ordering::Greater => memory.last_up = Some(now),
        std::cmp::Ordering::Less => memory.last_down = Some(now),
        std::cmp::Ordering::Equal => {}
    }
    Decision { from: current, to, desired, average, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits::new(50.0, 1, 10);

    const SLEEPY: Limits = Limits { min: 0, activation: 5.0, ..LIMITS };

    const BURSTY: Limits = Limits {
        step_up: Some(1),
        cooldown_up: Duration::from_secs(60),
        burst_window: Duration::from_secs(6),
        ..LIMITS
    };

    #[test]
    fn a_policy_becomes_limits_with_the_stabilization_as_its_cool_down_down() {
        let policy = Policy {
            metric: crate::rules::policy::Metric::Connections,
            target: 10.0,
            min: 1,
            max: 6,
            step_up: Some(2),
            step_down: None,
            cooldown_up: None,
            cooldown_down: None,
            dry_run: false,
            activation: 0.5,
            burst: false,
        };
        let limits = Limits::from_policy(&policy, Duration::from_secs(60), Duration::from_secs(6));
        assert_eq!((limits.min, limits.max, limits.step_up, limits.activation), (1, 6, Some(2), 0.5));
        assert_eq!((limits.cooldown_up, limits.cooldown_down), (Duration::ZERO, Duration::from_secs(60)));
        assert_eq!(limits.burst_window, Duration::ZERO, "no burst for a group that opted out");
        let bursty = Limits::from_policy(&Policy { burst: true, ..policy }, Duration::ZERO, Duration::from_secs(6));
        assert_eq!(bursty.burst_window, Duration::from_secs(6));
    }

    #[test]
    fn a_burst_of_twice_the_size_grows_at_once_past_step_and_cool_down() {
        let mut memory = Memory::new(Duration::ZERO);
        let t0 = Instant::now();
        // Four times the target on 2 members: 8 wanted, 4 times the size.
        let d = decide(&mut memory, t0, 2, &all(200.0, 2), &BURSTY);
        assert_eq!(d.to, 8, "{}", d.reason);
        assert!(d.reason.contains("burst"), "{}", d.reason);
        let calm = Limits { burst_window: Duration::ZERO, ..BURSTY };
        let d = decide(&mut Memory::new(Duration::ZERO), t0, 2, &all(200.0, 2), &calm);
        assert_eq!(d.to, 3, "without burst mode: one step");
    }

    #[test]
    fn no_scale_down_until_the_burst_window_has_been_calm() {
        let mut memory = Memory::new(Duration::ZERO);
        let t0 = Instant::now();
        decide(&mut memory, t0, 2, &all(200.0, 2), &BURSTY);
        let quiet = decide(&mut memory, t0 + Duration::from_secs(3), 8, &all(1.0, 8), &BURSTY);
        assert_eq!(quiet.to, 8, "still bursting: {}", quiet.reason);
        let later = decide(&mut memory, t0 + Duration::from_secs(7), 8, &all(1.0, 8), &BURSTY);
        assert!(later.to < 8, "calm for a whole window: {}", later.reason);
    }

    #[test]
    fn a_sleeping_group_wakes_to_one_member_only_above_the_activation() {
        assert_eq!(recommend(0, &[Some(5.0)], &SLEEPY).0, 0, "at the activation it sleeps on");
        assert_eq!(recommend(0, &[], &SLEEPY).0, 0, "no value: asleep");
        let (to, _, reason) = recommend(0, &[Some(5.5)], &SLEEPY);
        assert_eq!(to, 1, "{reason}");
        assert!(reason.contains("waking"), "{reason}");
    }

    #[test]
    fn an_awake_group_sleeps_only_when_every_member_is_at_or_below_the_activation() {
        let (to, _, reason) = recommend(3, &[Some(0.0), Some(5.0), Some(1.0)], &SLEEPY);
        assert_eq!(to, 0, "{reason}");
        assert_ne!(recommend(3, &[Some(0.0), Some(6.0), Some(1.0)], &SLEEPY).0, 0, "one member is busy");
        assert_ne!(recommend(3, &[Some(0.0), None, Some(1.0)], &SLEEPY).0, 0, "a missing value never puts it to sleep");
        assert_ne!(recommend(3, &all(0.0, 3), &LIMITS).0, 0, "min 1 never sleeps");
    }

    #[test]
    fn a_group_woken_from_outside_stays_awake_for_a_whole_window() {
        let mut memory = Memory::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for s in 0..10 {
            assert_eq!(decide(&mut memory, t0 + Duration::from_secs(s), 0, &[Some(0.0)], &SLEEPY).to, 0);
        }
        // A request woke it; its value is still 0.
        let woken = t0 + Duration::from_secs(11);
        assert_eq!(decide(&mut memory, woken, 1, &[Some(0.0)], &SLEEPY).to, 1, "not asleep again at once");
        assert_eq!(decide(&mut memory, woken + Duration::from_secs(30), 1, &[Some(0.0)], &SLEEPY).to, 1);
        assert_eq!(decide(&mut memory, woken + Duration::from_secs(61), 1, &[Some(0.0)], &SLEEPY).to, 0);
    }

    #[test]
    fn going_to_sleep_waits_for_the_stabilization_window() {
        let mut memory = Memory::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(decide(&mut memory, t0, 2, &all(50.0, 2), &SLEEPY).to, 2);
        assert_eq!(decide(&mut memory, t0 + Duration::from_secs(30), 2, &all(0.0, 2), &SLEEPY).to, 2);
        assert_eq!(decide(&mut memory, t0 + Duration::from_secs(61), 2, &all(0.0, 2), &SLEEPY).to, 0);
    }

    fn all(v: f64, n: usize) -> Vec<Option<f64>> {
        vec![Some(v); n]
    }

    #[test]
    fn scales_proportionally_to_load() {
        assert_eq!(recommend(2, &all(100.0, 2), &LIMITS).0, 4);
        assert_eq!(recommend(4, &all(10.0, 4), &LIMITS).0, 1);
        assert_eq!(recommend(3, &all(60.0, 3), &LIMITS).0, 4, "ceil(3 × 1.2)");
    }

    #[test]
    fn holds_within_the_tolerance() {
        assert_eq!(recommend(3, &all(54.0, 3), &LIMITS).0, 3);
        assert_eq!(recommend(3, &all(46.0, 3), &LIMITS).0, 3);
    }

    #[test]
    fn members_not_ready_count_as_zero_to_grow_and_are_left_out_to_shrink() {
        assert_eq!(hpa_values(&[Some(100.0)], 1, 50.0), [Some(100.0), Some(0.0)], "growing: 0");
        assert_eq!(hpa_values(&[Some(10.0)], 1, 50.0), [Some(10.0)], "shrinking: left out");
        // One busy ready member and one starting: 100 and 0 average 50, at target: no runaway scale-up.
        let values = hpa_values(&[Some(100.0)], 1, 50.0);
        assert_eq!(recommend(2, &values, &LIMITS).0, 2);
        // Without the rule the starting member's spike (or its absence) would double the group.
        assert_eq!(recommend(2, &[Some(100.0), Some(100.0)], &LIMITS).0, 4);
    }

    #[test]
    fn clamps_to_the_bounds() {
        assert_eq!(recommend(5, &all(1000.0, 5), &LIMITS).0, 10);
        assert_eq!(recommend(5, &all(0.0, 5), &Limits { min: 2, ..LIMITS }).0, 2);
    }

    #[test]
    fn without_values_only_the_bounds_move_a_group_and_the_reason_says_so() {
        let (desired, _, reason) = recommend(1, &[None], &Limits { min: 2, ..LIMITS });
        assert_eq!(desired, 2);
        assert!(reason.contains("outside the bounds"), "{reason}");
        assert_eq!(recommend(3, &[None; 3], &LIMITS).2, "no fresh metric value");
    }

    #[test]
    fn reasons_print_extreme_numbers_compactly() {
        let (to, _, reason) = recommend(1, &[Some(1e308)], &LIMITS);
        assert_eq!(to, 10);
        assert_eq!(reason, "average 1.000e308 vs target 50 over 1 members");
        let huge_target = Limits { target: 1e300, ..LIMITS };
        let (_, _, reason) = recommend(1, &[Some(1e300)], &huge_target);
        assert_eq!(reason, "average 1.000e300 within 10% of target 1.000e300");
        assert_eq!(recommend(2, &all(54.0, 2), &LIMITS).2, "average 54.00 within 10% of target 50", "usual numbers");
    }

    #[test]
    fn no_fresh_value_means_no_change() {
        let (to, average, reason) = recommend(3, &[None, None, None], &LIMITS);
        assert_eq!((to, average), (3, None));
        assert!(reason.contains("no fresh"));
    }

    #[test]
    fn missing_values_count_against_the_change() {
        // Scaling up: the silent member counts as idle.
        let (to, avg, _) = recommend(2, &[Some(100.0), None], &LIMITS);
        assert_eq!((to, avg), (2, Some(50.0)));
        // Scaling down: the silent members count as at target, which damps
        // the drop (to 3, where the one idle value alone would say 1)...
        let (to, avg, _) = recommend(4, &[Some(0.0), None, None, None], &LIMITS);
        assert_eq!((to, avg), (3, Some(37.5)));
        // ...and cancels it when the rest is within tolerance.
        let mut values = vec![None; 10];
        values[0] = Some(0.0);
        assert_eq!(recommend(10, &values, &LIMITS).0, 10);
    }

    #[test]
    fn scale_down_waits_for_the_window() {
        let mut s = Memory::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(decide(&mut s, t0, 1, &all(500.0, 1), &LIMITS).to, 5, "HPA's default step: max(4, current)");
        assert_eq!(decide(&mut s, t0, 5, &all(500.0, 5), &LIMITS).to, 10);
        let quiet = decide(&mut s, t0 + Duration::from_secs(30), 10, &all(0.0, 10), &LIMITS);
        assert_eq!((quiet.desired, quiet.to), (1, 10));
        assert!(quiet.reason.contains("stabilization"));
        assert_eq!(decide(&mut s, t0 + Duration::from_secs(61), 10, &all(0.0, 10), &LIMITS).to, 1);
    }

    #[test]
    fn steps_and_cooldowns_hold_changes_back() {
        let limits = Limits { step_up: Some(2), step_down: Some(1), cooldown_up: Duration::from_secs(10), ..LIMITS };
        let mut m = Memory::new(Duration::ZERO);
        let t0 = Instant::now();
        let up = decide(&mut m, t0, 1, &all(500.0, 1), &limits);
        assert_eq!(up.to, 3);
        assert!(up.reason.contains("at most +2"));
        let cooling = decide(&mut m, t0 + Duration::from_secs(5), 3, &all(500.0, 3), &limits);
        assert_eq!(cooling.to, 3);
        assert!(cooling.reason.contains("cooling down"));
        assert_eq!(decide(&mut m, t0 + Duration::from_secs(11), 3, &all(500.0, 3), &limits).to, 5);
        assert_eq!(decide(&mut m, t0 + Duration::from_secs(12), 5, &all(0.0, 5), &limits).to, 4);
    }

    fn limits() -> impl Strategy<Value = Limits> {
        (1u32..20, 0u32..20, 1.0f64..1000.0).prop_map(|(min, extra, target)| Limits::new(target, min, min + extra))
    }

    fn stepped_limits() -> impl Strategy<Value = Limits> {
        (limits(), prop::option::of(1u32..5), prop::option::of(1u32..5), 0u64..60, 0u64..60).prop_map(
            |(l, up, down, cu, cd)| Limits {
                step_up: up,
                step_down: down,
                cooldown_up: Duration::from_secs(cu),
                cooldown_down: Duration::from_secs(cd),
                ..l
            },
        )
    }

    fn load() -> impl Strategy<Value = Vec<Option<f64>>> {
        prop::collection::vec(prop::option::weighted(0.8, 0.0f64..5000.0), 1..30)
    }

    proptest! {
        #[test]
        fn never_outside_the_bounds(l in limits(), values in load()) {
            let (to, _, _) = recommend(values.len() as u32, &values, &l);
            prop_assert!(to >= l.min && to <= l.max);
        }

        #[test]
        fn a_load_within_tolerance_never_changes_the_count(l in limits(), n in 1u32..20, f in -0.1f64..0.1) {
            let n = n.clamp(l.min, l.max);
            let values = vec![Some(l.target * (1.0 + f)); n as usize];
            prop_assert_eq!(recommend(n, &values, &l).0, n);
        }

        #[test]
        fn desired_is_monotone_in_load(l in limits(), n in 1u32..20, a in 0.0f64..5000.0, b in 0.0f64..5000.0) {
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let r = |v: f64| recommend(n, &vec![Some(v); n as usize], &l).0;
            prop_assert!(r(low) <= r(high));
        }

        #[test]
        fn never_below_the_windows_maximum_before_it_passes(
            l in limits(),
            loads in prop::collection::vec(0.0f64..5000.0, 2..20),
            steps in prop::collection::vec(1u64..30, 2..20),
        ) {
            let window = Duration::from_secs(60);
            let mut s = Memory::new(window);
            let t0 = Instant::now();
            let mut now = t0;
            let mut current = l.min;
            let mut seen: Vec<(Instant, u32)> = Vec::new();
            for (load, step) in loads.iter().zip(steps.iter().cycle()) {
                now += Duration::from_secs(*step);
                let d = decide(&mut s, now, current, &vec![Some(*load); current as usize], &l);
                seen.push((now, d.desired));
                let window_max = seen.iter().filter(|(t, _)| now.duration_since(*t) <= window).map(|(_, d)| *d).max().unwrap();
                if d.to < current {
                    prop_assert!(d.to >= window_max.min(current));
                }
                current = d.to;
            }
        }

        #[test]
        fn never_more_than_a_step_and_never_within_a_cooldown(
            l in stepped_limits(),
            loads in prop::collection::vec(0.0f64..5000.0, 2..30),
            steps in prop::collection::vec(1u64..20, 1..10),
        ) {
            let mut m = Memory::new(Duration::from_secs(15));
            let mut now = Instant::now();
            let mut current = l.min;
            let (mut last_up, mut last_down): (Option<Instant>, Option<Instant>) = (None, None);
            for (load, step) in loads.iter().zip(steps.iter().cycle()) {
                now += Duration::from_secs(*step);
                let d = decide(&mut m, now, current, &vec![Some(*load); current as usize], &l);
                if d.to > current {
                    prop_assert!(d.to - current <= l.step_up.unwrap_or(current.max(4)));
                    prop_assert!(last_up.is_none_or(|t| now.duration_since(t) >= l.cooldown_up));
                    last_up = Some(now);
                }
                if d.to < current {
                    prop_assert!(current - d.to <= l.step_down.unwrap_or(current));
                    prop_assert!(last_down.is_none_or(|t| now.duration_since(t) >= l.cooldown_down));
                    last_down = Some(now);
                }
                current = d.to;
            }
        }
    }
}
