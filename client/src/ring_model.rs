//! A Slint model that keeps only its newest rows, for the conversation log: a flooded session
//! drops its oldest line with every new one, so that drop must cost the same however long the log
//! is (a `VecModel::remove(0)` moves every row after it).

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;

use slint::{Model, ModelNotify, ModelTracker};

pub struct RingModel<T> {
    rows: RefCell<VecDeque<T>>,
    capacity: usize,
    notify: ModelNotify,
}

impl<T> RingModel<T> {
    /// An empty model that will hold at most `capacity` rows (at least one).
    pub fn new(capacity: usize) -> RingModel<T> {
        assert!(capacity > 0, "a ring model must hold at least one row");
        RingModel {
            // Grown as lines come: a conversation of three lines holds three, not --log-lines.
            rows: RefCell::new(VecDeque::new()),
            capacity,
            notify: ModelNotify::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `row`; at capacity the oldest row goes first.
    pub fn push(&self, row: T) {
        // Each change is announced before the next one is made, and with the rows unborrowed: a
        // view may read the model back while it is told.
        if self.rows.borrow().len() >= self.capacity {
            self.rows.borrow_mut().pop_front();
            self.notify.row_removed(0, 1);
        }
        let last = {
            let mut rows = self.rows.borrow_mut();
            rows.push_back(row);
            rows.len() - 1
        };
        self.notify.row_added(last, 1);
    }
}

impl<T: Clone + 'static> Model for RingModel<T> {
    type Data = T;

    fn row_count(&self) -> usize {
        self.rows.borrow().len()
    }

    fn row_data(&self, row: usize) -> Option<T> {
        self.rows.borrow().get(row).cloned()
    }

    fn set_row_data(&self, row: usize, data: T) {
        let changed = match self.rows.borrow_mut().get_mut(row) {
            Some(slot) => {
                *slot = data;
                true
            }
            None => false,
        };
        if changed {
            self.notify.row_changed(row);
        }
    }

    fn model_tracker(&self) -> &dyn ModelTracker {
        &self.notify
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use slint::ModelExt;

    use super::*;

    fn rows(model: &RingModel<u32>) -> Vec<u32> {
        model.iter().collect()
    }

    #[test]
    fn keeps_every_row_up_to_its_capacity() {
        let model = RingModel::new(3);
        assert_eq!(model.row_count(), 0);
        assert_eq!(model.row_data(0), None);
        model.push(1);
        model.push(2);
        model.push(3);
        assert_eq!(rows(&model), vec![1, 2, 3]);
    }

    #[test]
    fn past_its_capacity_keeps_the_newest_rows_in_order() {
        let model = RingModel::new(5);
        for n in 0..5003 {
            model.push(n);
        }
        assert_eq!(model.row_count(), 5);
        assert_eq!(rows(&model), vec![4998, 4999, 5000, 5001, 5002]);
        assert_eq!(model.row_data(0), Some(4998));
        assert_eq!(model.row_data(4), Some(5002));
        assert_eq!(model.row_data(5), None);
    }

    #[test]
    fn a_row_can_be_changed_in_place() {
        let model = RingModel::new(2);
        model.push(1);
        model.push(2);
        model.set_row_data(1, 20);
        model.set_row_data(5, 50);
        assert_eq!(rows(&model), vec![1, 20]);
    }

    #[test]
    fn a_capacity_of_one_holds_the_last_row() {
        let model = RingModel::new(1);
        model.push(7);
        model.push(8);
        assert_eq!(rows(&model), vec![8]);
    }

    #[test]
    fn views_are_told_of_every_row_added_and_dropped() {
        // A sorted model keeps its own order of the rows, updated only from the notifications: a
        // notification missed or misplaced shows as a wrong row or a wrong count there.
        let ring = Rc::new(RingModel::new(2));
        let sorted = ring.clone().sort_by(|a: &u32, b: &u32| b.cmp(a));
        for n in 1..=4 {
            ring.push(n);
            let mut newest_first = rows(&ring);
            newest_first.reverse();
            assert_eq!(sorted.iter().collect::<Vec<_>>(), newest_first, "after {n}");
        }
        assert_eq!(sorted.iter().collect::<Vec<_>>(), vec![4, 3]);
    }
}
