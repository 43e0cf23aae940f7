use live_core::{Assigns, LiveView, Markup, Mount, ViewError, html};

#[derive(Assigns)]
struct Page {
    #[subscription_key]
    list_id: i64,
    #[watch]
    todos: Vec<String>,
}

impl LiveView for Page {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Ok(Page { list_id: 1, todos: vec![] })
    }
    fn render(&self) -> Markup {
        html! { (self.list_id) (self.todos.len()) }
    }
}

fn main() {}
