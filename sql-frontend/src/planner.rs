//! The planner: the catalog it reads, the CTEs in scope, and the relations it builds.

use std::cell::RefCell;

use ciuf_engine::{Catalog, Dialect, Plan};

use crate::scope::Scope;

/// A planned relation: its plan and the columns it exposes.
#[derive(Debug, Clone)]
pub(crate) struct Rel {
    pub plan: Plan,
    pub scope: Scope,
}

/// Plans SQL against a catalog.
pub(crate) struct Planner<'a> {
    pub catalog: &'a dyn Catalog,
    pub dialect: Dialect,
    /// WITH definitions in scope, innermost last.
    ctes: RefCell<Vec<(String, Rel)>>,
}

impl<'a> Planner<'a> {
    pub fn new(catalog: &'a dyn Catalog) -> Planner<'a> {
        Planner { catalog, dialect: catalog.dialect(), ctes: RefCell::new(Vec::new()) }
    }

    /// The CTE called `name`, innermost first.
    pub fn cte(&self, name: &str) -> Option<Rel> {
        self.ctes.borrow().iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, r)| r.clone())
    }

    pub fn cte_names(&self) -> Vec<String> {
        self.ctes.borrow().iter().map(|(n, _)| n.clone()).collect()
    }

    /// Brings a CTE into scope (until [`Planner::pop_ctes`]).
    pub fn push_cte(&self, name: String, rel: Rel) {
        self.ctes.borrow_mut().push((name, rel));
    }

    /// Leaves only the first `n` CTEs in scope.
    pub fn pop_ctes(&self, n: usize) {
        self.ctes.borrow_mut().truncate(n);
    }

    pub fn cte_depth(&self) -> usize {
        self.ctes.borrow().len()
    }
}
