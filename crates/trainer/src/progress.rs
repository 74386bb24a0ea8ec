//! Progress of a training session on the terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars: epochs and steps, with the ETA; hidden when not wanted or not a terminal.
pub(crate) struct Bars {
    epochs: ProgressBar,
    steps: ProgressBar,
    per_epoch: f64,
}

impl Bars {
    pub(crate) fn new(
        show: bool,
        total: usize,
        done: usize,
        batch: usize,
        examples: usize,
    ) -> Bars {
        let multi = MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let per_epoch = examples as f64 / batch as f64;
        let style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        // Epochs in hundredths, so a run shorter than one epoch still moves the bar.
        let epochs = multi.add(ProgressBar::new(
            ((total as f64 / per_epoch) * 100.0).ceil() as u64,
        ));
        epochs.set_style(style("epochs [{bar:30}] {msg}"));
        let steps = multi.add(ProgressBar::new(total as u64));
        steps.set_style(style(
            "steps  [{bar:30}] {pos}/{len}, {elapsed} elapsed, ETA {eta} {msg}",
        ));
        steps.set_position(done as u64);
        steps.reset_eta();
        let bars = Bars {
            epochs,
            steps,
            per_epoch,
        };
        bars.step(done, done as f64 / per_epoch, f64::NAN);
        bars
    }

    pub(crate) fn step(&self, steps: usize, epochs_done: f64, loss: f64) {
        self.steps.set_position(steps as u64);
        if loss.is_finite() {
            self.steps.set_message(format!("loss {loss:.4}"));
        }
        self.epochs.set_position((epochs_done * 100.0) as u64);
        let total = self.steps.length().unwrap_or(0) as f64 / self.per_epoch;
        self.epochs
            .set_message(format!("{epochs_done:.2}/{total:.2} epochs"));
    }

    /// Prints a line whether or not the bars are drawn (they are hidden without a terminal).
    pub(crate) fn println(&self, line: String) {
        self.steps.suspend(|| eprintln!("{line}"));
    }

    pub(crate) fn finish(&self) {
        self.steps.finish_and_clear();
        self.epochs.finish_and_clear();
    }
}
