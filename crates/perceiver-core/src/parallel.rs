//! Splitting an op's independent items (attention heads) over rayon's threads so that the
//! calling thread works too.
//!
//! A rayon parallel loop called from outside the pool (a benchmark's or an inference caller's
//! thread) hands all of its work to the pool and sleeps until a woken worker has finished it.
//! On small ops the two context switches cost more than the arithmetic: with one thread the
//! HiP level-3 attention's forward+backward took 1.14 ms that way against 0.63 ms run in place
//! (docs/PERFORMANCE.md). Here the items are cut into one contiguous part per thread; the
//! calling thread runs the first part itself while the pool runs the others, and with one
//! thread nothing is handed over at all. Called from inside the pool (the trainer's shards),
//! the other parts are queued on the worker's own deque, where an idle worker steals them.

use std::ops::Range;

/// `items` cut into one contiguous range per rayon thread (fewer when there are fewer items).
pub(crate) fn ranges(items: usize) -> Vec<Range<usize>> {
    let parts = rayon::current_num_threads().clamp(1, items.max(1));
    (0..parts)
        .map(|p| p * items / parts..(p + 1) * items / parts)
        .collect()
}

/// `x` cut at the boundaries of `ranges`, `per` elements per item: one slice per range.
pub(crate) fn cut<'a, T>(
    mut x: &'a mut [T],
    per: usize,
    ranges: &[Range<usize>],
) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let len = (r.len() * per).min(x.len());
        let (part, rest) = std::mem::take(&mut x).split_at_mut(len);
        parts.push(part);
        x = rest;
    }
    parts
}

/// Runs `f` on every part, the first on the calling thread, the others on the pool; returns
/// when all are done.
pub(crate) fn run<P: Send>(parts: Vec<P>, f: impl Fn(P) + Sync) {
    let mut parts = parts.into_iter();
    let Some(first) = parts.next() else {
        return;
    };
    let f = &f;
    rayon::in_place_scope(|scope| {
        for part in parts {
            scope.spawn(move |_| f(part));
        }
        f(first);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_in_exactly_one_part_and_slices_follow_the_ranges() {
        for items in [0, 1, 2, 7, 64, 1000] {
            let rs = ranges(items);
            assert!(!rs.is_empty() && rs.len() <= items.max(1));
            assert_eq!(rs.first().map(|r| r.start), Some(0));
            assert_eq!(rs.last().map(|r| r.end), Some(items));
            assert!(rs.windows(2).all(|w| w[0].end == w[1].start));
            let mut x: Vec<usize> = (0..items * 3).collect();
            let parts = cut(&mut x, 3, &rs);
            for (r, part) in rs.iter().zip(&parts) {
                assert_eq!(
                    part.first().copied(),
                    (!r.is_empty()).then_some(r.start * 3)
                );
                assert_eq!(part.len(), r.len() * 3);
            }
        }
    }

    #[test]
    fn run_calls_every_part_once() {
        let hits = std::sync::Mutex::new(Vec::new());
        run((0..5).collect(), |p: usize| {
            hits.lock().expect("lock").push(p)
        });
        let mut hits = hits.into_inner().expect("lock");
        hits.sort();
        assert_eq!(hits, vec![0, 1, 2, 3, 4]);
    }
}
