use std::sync::Arc;
use live_core::{Assigns, LiveView, Markup, Mount, ViewError, Watch, html};

#[derive(Watch, Clone)]
#[watch(table = "users", subscription_key = "team_id")]
struct User { id: i64, team_id: i64, name: String }

#[derive(Watch, Clone)]
#[watch(table = "cards", subscription_key = "board_id")]
struct Card { id: i64, board_id: i64, title: String }

// `users` is keyed by team, not by board: without a stated scope it would receive the users
// whose team id equals the board id. A compile error names the choices.
#[derive(Assigns)]
struct BoardPage {
    #[subscription_key]
    board_id: i64,
    #[watch]
    cards: Vec<Arc<Card>>,
    #[watch]
    users: Vec<Arc<User>>,
}

// A column the row type does not have.
#[derive(Assigns)]
struct Typo {
    id: i64,
    #[watch(by = "bord_id", key = self.id)]
    cards: Vec<Arc<Card>>,
}

impl LiveView for BoardPage {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Err(ViewError::NotFound)
    }
    fn render(&self) -> Markup {
        html! { (self.board_id) (self.cards.len()) (self.users.len()) }
    }
}

impl LiveView for Typo {
    type State = ();
    type Message = ();
    async fn mount(_: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        Err(ViewError::NotFound)
    }
    fn render(&self) -> Markup {
        html! { (self.id) (self.cards.len()) }
    }
}

fn main() {}
