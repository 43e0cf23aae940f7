use live_core::Watch;

#[derive(Watch)]
#[watch(table = "todos", subscription_key = "lst_id")]
struct Todo {
    id: i64,
    list_id: i64,
}

fn main() {}
