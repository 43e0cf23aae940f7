use std::sync::Arc;

use live_core::{Assigns, LiveView, Markup, Mount, SyncCtx, ViewError, Watch, html};

#[derive(Watch, Clone)]
#[watch(table = "todos", subscription_key = "list_id")]
struct Todo {
    id: i64,
    list_id: i64,
}

#[derive(Assigns)]
struct Page {
    #[subscription_key]
    list_id: i64,
    #[watch(sync = Self::sorted)]
    todos: Vec<Arc<Todo>>,
    #[watch(sync = Self::first)]
    first: Option<Arc<Todo>>,
}

impl Page {
    // Forgot the context argument.
    async fn sorted(&mut self, todos: Vec<Arc<Todo>>) -> Result<Vec<Arc<Todo>>, ViewError> {
        Ok(todos)
    }

    // The value of another type than the assign's.
    async fn first(
        &mut self,
        todo: Vec<Arc<Todo>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Option<Arc<Todo>>, ViewError> {
        Ok(todo.into_iter().next())
    }
}

impl LiveView for Page {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Ok(Page { list_id: 1, todos: Vec::new(), first: None })
    }
    fn render(&self) -> Markup {
        html! { (self.list_id) (self.todos.len()) (self.first.is_some()) }
    }
}

fn main() {}
