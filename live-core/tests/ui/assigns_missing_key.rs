use std::sync::Arc;

use live_core::{Assigns, Watch};

#[derive(Watch)]
#[watch(table = "todos", subscription_key = "list_id")]
struct Todo {
    id: i64,
    list_id: i64,
}

#[derive(Assigns)]
struct Page {
    list_id: i64,
    #[watch]
    todos: Vec<Arc<Todo>>,
}

fn main() {}
