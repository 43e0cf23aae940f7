use live_core::Watch;

#[derive(Watch)]
#[watch(tabel = "todos", subscription_key = "list_id")]
struct Todo {
    id: i64,
    list_id: i64,
}

fn main() {}
