//! What the derives accept: another schema, id and key columns, renamed and skipped fields, a
//! sync hook, an `Option` assign, a view without watched assigns. (Compiled with the crate's
//! other tests; the compile-fail cases are in `derive.rs`.)

use std::sync::Arc;

use live_core::{Assigns, LiveView, Markup, Mount, SyncCtx, ViewError, Watch, html};

#[derive(Watch, Clone)]
#[watch(table = "app.todos", subscription_key = "list_id", id = "todo_id")]
struct Todo {
    todo_id: i64,
    #[watch(rename = "list_id")]
    list: i64,
    title: String,
    #[watch(skip)]
    cached: usize,
}

#[derive(Assigns)]
struct Page {
    #[subscription_key]
    list_id: Option<i64>,
    #[watch(sync = Self::sorted)]
    todos: Vec<Arc<Todo>>,
    #[watch]
    first: Option<Arc<Todo>>,
    other: String,
}

impl Page {
    async fn sorted(
        &mut self,
        mut t: Vec<Arc<Todo>>,
        _: &mut SyncCtx<'_, Self>,
    ) -> Result<Vec<Arc<Todo>>, ViewError> {
        t.sort_by_key(|t| t.todo_id);
        Ok(t)
    }
}

impl LiveView for Page {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Ok(Page {
            list_id: None,
            todos: vec![],
            first: None,
            other: String::new(),
        })
    }
    fn render(&self) -> Markup {
        html! { (self.other) (self.todos.len()) (self.first.as_ref().map(|t| t.cached).unwrap_or(0)) (self.todos.first().map(|t| t.title.clone()).unwrap_or_default()) }
    }
}

#[derive(Assigns)]
struct Plain {
    n: i64,
}

#[test]
fn derives_compile_and_name_their_columns() {
    assert_eq!(<Todo as Watch>::COLUMNS, &["todo_id", "list_id", "title"]);
    assert_eq!(<Todo as Watch>::TABLE, "app.todos");
    assert_eq!(<Todo as Watch>::ID_COLUMN, "todo_id");
    let _ = Plain { n: 1 }.n;
    let page = Page {
        list_id: Some(1),
        todos: vec![],
        first: None,
        other: "x".into(),
    };
    assert!(page.render().into_string().starts_with('x'));
}
