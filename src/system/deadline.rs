//! Timeouts whose timer is armed once per task.
//!
//! Why not `tokio::time::timeout` alone: madsim's `Sleep` has no cancellation and adds a new
//! timer to the simulation's heap on *every* poll while pending. A timeout around a future
//! that is woken often (an HTTP exchange, an etcd request) therefore left one timer per
//! wake-up; each stale timer later woke its task for nothing, and that spurious poll armed
//! yet another. Here the timer is armed on the first poll and again only if the task's
//! waker changes. Under real tokio these are tokio's own `sleep` and `timeout`: tokio
//! cancels its timers, and its `Sleep` may decline to register while the task's cooperative
//! budget is spent, which a wrapper that arms once would take for armed.

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

#[cfg(not(madsim))]
pub use real::{sleep, timeout, Alarm};

#[cfg(not(madsim))]
mod real {
    use super::Elapsed;
    use std::future::Future;
    use std::time::Duration;

    pub fn sleep(duration: Duration) -> tokio::time::Sleep {
        tokio::time::sleep(duration)
    }

    pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
        tokio::time::timeout(duration, future)
            .await
            .map_err(|_| Elapsed)
    }

    /// tokio cancels its timers: an alarm is plain `sleep` and `timeout` here.
    #[derive(Debug, Default)]
    pub struct Alarm;

    impl Alarm {
        pub fn new() -> Self {
            Alarm
        }

        pub async fn sleep(&self, duration: Duration) {
            sleep(duration).await
        }

        pub async fn timeout<F: Future>(
            &self,
            duration: Duration,
            future: F,
        ) -> Result<F::Output, Elapsed> {
            timeout(duration, future).await
        }
    }
}

#[cfg(madsim)]
pub use sim::{sleep, timeout, Alarm, AlarmSleep, AlarmTimeout, Sleep, Timeout};

#[cfg(madsim)]
mod sim {
    use super::Elapsed;
    use pin_project_lite::pin_project;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;
    use tokio::time::Instant;

    pin_project! {
        /// A `tokio::time::Sleep` that arms its timer once per waker.
        pub struct Sleep {
            #[pin]
            inner: tokio::time::Sleep,
            armed: Option<Waker>,
        }
    }

    impl Sleep {
        pub fn new(duration: Duration) -> Self {
            Sleep {
                inner: tokio::time::sleep(duration),
                armed: None,
            }
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = self.project();
            if this.inner.is_elapsed() {
                return Poll::Ready(());
            }
            if this.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                // Armed for this task already: the timer will wake it.
                return Poll::Pending;
            }
            let polled = this.inner.poll(cx);
            if polled.is_pending() {
                *this.armed = Some(cx.waker().clone());
            }
            polled
        }
    }

    /// Waits for `duration`, arming one timer.
    pub fn sleep(duration: Duration) -> Sleep {
        Sleep::new(duration)
    }

    pin_project! {
        /// A future bounded by a deadline (see [`timeout`]).
        pub struct Timeout<F> {
            #[pin]
            future: F,
            #[pin]
            sleep: Sleep,
        }
    }

    impl<F: Future> Future for Timeout<F> {
        type Output = Result<F::Output, Elapsed>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            // The future first, as tokio does: an answer that arrives with the deadline wins.
            if let Poll::Ready(v) = this.future.poll(cx) {
                return Poll::Ready(Ok(v));
            }
            this.sleep.poll(cx).map(|()| Err(Elapsed))
        }
    }

    /// Runs `future` for at most `duration`, arming one timer.
    pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
        Timeout {
            future,
            sleep: Sleep::new(duration),
        }
    }

    /// One timer at a time for a task that bounds many short calls in turn, each with a
    /// deadline of its own (Redlock's per-node timeouts: ten calls of a few ms per attempt,
    /// each bounded by 5 % of the TTL, then a retry delay).
    ///
    /// Why: [`timeout`] arms one madsim timer per call, and madsim cancels none, so each
    /// fires after its call is long answered and wakes the task for nothing. An alarm arms a
    /// timer only when none it armed for this task is still due at or before the deadline at
    /// hand; that earlier timer wakes the task, the poll finds its deadline not reached, and
    /// arms for it then. Every deadline still ends its wait at the same instant as
    /// [`timeout`]'s would: only the wake-ups for nothing go.
    #[derive(Debug, Default)]
    pub struct Alarm {
        /// The earliest pending timer this alarm armed, and the task it wakes.
        armed: std::sync::Mutex<Option<(Instant, Waker)>>,
    }

    impl Alarm {
        pub fn new() -> Self {
            Alarm::default()
        }

        /// Waits for `duration`, arming a timer only if the alarm has none due by then.
        pub fn sleep(&self, duration: Duration) -> AlarmSleep<'_> {
            AlarmSleep {
                alarm: self,
                deadline: Instant::now() + duration,
            }
        }

        /// Runs `future` for at most `duration`, arming a timer only if the alarm has none
        /// due by then.
        pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> AlarmTimeout<'_, F> {
            AlarmTimeout {
                future,
                alarm: self,
                deadline: Instant::now() + duration,
            }
        }

        /// Ready at `deadline`; until then, a timer of this alarm is due at or before it.
        fn poll_deadline(&self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
            let now = Instant::now();
            if now >= deadline {
                return Poll::Ready(());
            }
            // Every change under this lock is one assignment: a poisoned lock is still whole.
            let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
            let due = armed.as_ref().is_some_and(|(at, waker)| {
                *at > now && *at <= deadline && waker.will_wake(cx.waker())
            });
            if !due {
                // madsim adds the timer at this poll and keeps it when the `Sleep` is dropped
                // (it cancels no timer): it wakes this task at `deadline`.
                let polled = std::pin::pin!(tokio::time::sleep_until(deadline)).poll(cx);
                assert!(polled.is_pending(), "the deadline is ahead");
                *armed = Some((deadline, cx.waker().clone()));
            }
            debug_assert!(armed
                .as_ref()
                .is_some_and(|(at, _)| *at > now && *at <= deadline));
            Poll::Pending
        }
    }

    /// [`Alarm::sleep`]'s future.
    #[derive(Debug)]
    pub struct AlarmSleep<'a> {
        alarm: &'a Alarm,
        deadline: Instant,
    }

    impl Future for AlarmSleep<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.alarm.poll_deadline(self.deadline, cx)
        }
    }

    pin_project! {
        /// [`Alarm::timeout`]'s future.
        pub struct AlarmTimeout<'a, F> {
            #[pin]
            future: F,
            alarm: &'a Alarm,
            deadline: Instant,
        }
    }

    impl<F: Future> Future for AlarmTimeout<'_, F> {
        type Output = Result<F::Output, Elapsed>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.project();
            // The future first, as `Timeout` does: an answer that arrives with the deadline wins.
            if let Poll::Ready(v) = this.future.poll(cx) {
                return Poll::Ready(Ok(v));
            }
            this.alarm
                .poll_deadline(*this.deadline, cx)
                .map(|()| Err(Elapsed))
        }
    }
}

#[cfg(all(test, madsim))]
mod tests {
    use super::*;
    use std::task::Poll;
    use std::time::Duration;

    #[madsim::test]
    async fn times_out_and_completes_like_tokio() {
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            timeout(Duration::from_millis(50), std::future::pending::<()>()).await,
            Err(Elapsed)
        );
        // madsim wakes a timer a few µs late, never early.
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_millis(50) && at < Duration::from_millis(51),
            "{at:?}"
        );
        let v = timeout(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            7
        })
        .await;
        assert_eq!(v, Ok(7));
        sleep(Duration::from_millis(30)).await;
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_millis(90) && at < Duration::from_millis(92),
            "{at:?}"
        );
    }

    #[madsim::test]
    async fn an_alarm_ends_each_wait_at_its_own_deadline_with_fewer_wake_ups() {
        /// The task's polls while `f` runs: a wake-up for nothing is one more.
        async fn polls<F: std::future::Future>(f: F) -> u32 {
            let mut f = std::pin::pin!(f);
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                f.as_mut().poll(cx)
            })
            .await;
            polls
        }
        let quick = || tokio::time::sleep(Duration::from_millis(2));
        let bound = Duration::from_millis(100);
        // Ten quick calls each bounded by 100 ms, then a 300 ms wait: the plain timeouts'
        // ten timers each wake the task during the wait, the alarm's one timer once.
        let plain = polls(async {
            for _ in 0..10 {
                assert_eq!(timeout(bound, quick()).await, Ok(()));
            }
            sleep(Duration::from_millis(300)).await;
        })
        .await;
        let alarm = Alarm::new();
        let shared = polls(async {
            for _ in 0..10 {
                assert_eq!(alarm.timeout(bound, quick()).await, Ok(()));
            }
            alarm.sleep(Duration::from_millis(300)).await;
        })
        .await;
        assert_eq!(plain, shared + 9, "plain {plain}, alarm {shared}");
        // A call that never answers, started after the alarm's first timer was armed, ends at
        // its own deadline, not at that timer's.
        let alarm = Alarm::new();
        let t0 = tokio::time::Instant::now();
        assert_eq!(alarm.timeout(bound, quick()).await, Ok(()));
        assert_eq!(
            alarm.timeout(bound, std::future::pending::<()>()).await,
            Err(Elapsed)
        );
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_millis(102) && at < Duration::from_millis(103),
            "{at:?}"
        );
        // A sleep ends on the dot too, and a shorter deadline than the armed one arms anew.
        let t1 = tokio::time::Instant::now();
        let long = alarm.timeout(Duration::from_secs(5), std::future::pending::<()>());
        let short = alarm.timeout(Duration::from_millis(10), std::future::pending::<()>());
        let raced = tokio::select! {
            biased;
            r = long => ("long", r),
            r = short => ("short", r),
        };
        assert_eq!(raced, ("short", Err(Elapsed)));
        let at = t1.elapsed();
        assert!(
            at >= Duration::from_millis(10) && at < Duration::from_millis(11),
            "{at:?}"
        );
    }

    #[madsim::test]
    async fn a_chatty_future_still_times_out_on_the_dot() {
        // Woken every millisecond and never done: every poll after the first skips arming,
        // and the one timer armed first must still end it at the deadline.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        tokio::spawn(async move {
            for i in 0..1_000 {
                if tx.send(i).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let t0 = tokio::time::Instant::now();
        let mut polls = 0u32;
        let got = timeout(
            Duration::from_millis(200),
            std::future::poll_fn(|cx| {
                polls += 1;
                while let Poll::Ready(Some(_)) = rx.poll_recv(cx) {}
                Poll::<()>::Pending
            }),
        )
        .await;
        assert_eq!(got, Err(Elapsed));
        let at = t0.elapsed();
        assert!(
            at >= Duration::from_millis(200) && at < Duration::from_millis(201),
            "{at:?}"
        );
        assert!(polls >= 150, "the future was woken often: {polls} polls");
    }
}
