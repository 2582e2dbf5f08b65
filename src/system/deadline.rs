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
pub use real::{sleep, timeout};

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
}

#[cfg(madsim)]
pub use sim::{sleep, timeout, Sleep, Timeout};

#[cfg(madsim)]
mod sim {
    use super::Elapsed;
    use pin_project_lite::pin_project;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

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
