//! Path → route: the upstream set and plugin chain a request gets.
//!
//! The table is swapped atomically as a whole ([`arc_swap::ArcSwap`]): a
//! request holds the `Arc<Route>` it started with, so a swap never disturbs a
//! request already running. This module knows names only; `pipeline` resolves
//! them to live upstreams and plugin instances.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{PluginName, RoutePath, RouteSpec, UpstreamName};

/// One route as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub path: RoutePath,
    /// In configured order (which decides resource-URI collisions).
    pub upstreams: Vec<UpstreamName>,
    /// Plugin instances in chain order.
    pub plugins: Vec<PluginName>,
}

impl Route {
    /// Whether names are namespaced (`{upstream}__{name}`): only when the
    /// route merges several upstreams.
    pub fn aggregates(&self) -> bool {
        self.upstreams.len() > 1
    }
}

impl From<&RouteSpec> for Route {
    fn from(spec: &RouteSpec) -> Self {
        Route {
            path: spec.path.clone(),
            upstreams: spec.upstreams.clone(),
            plugins: spec.plugins.clone(),
        }
    }
}

/// Every route, by path.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_path: HashMap<String, Arc<Route>>,
}

impl RouteTable {
    pub fn new(specs: &[RouteSpec]) -> Self {
        Self {
            by_path: specs
                .iter()
                .map(|s| (s.path.as_str().to_owned(), Arc::new(Route::from(s))))
                .collect(),
        }
    }

    pub fn get(&self, path: &str) -> Option<Arc<Route>> {
        self.by_path.get(path).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.by_path.values()
    }
}

/// The current route table, swappable while serving.
#[derive(Debug)]
pub struct Routes(ArcSwap<RouteTable>);

impl Routes {
    pub fn new(table: RouteTable) -> Self {
        Self(ArcSwap::from_pointee(table))
    }

    /// The route for `path` at this instant.
    pub fn lookup(&self, path: &str) -> Option<Arc<Route>> {
        self.0.load().get(path)
    }

    pub fn current(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }

    /// Replaces the whole table; requests already running keep their route.
    pub fn swap(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }
}
