use live_core::Watch;

// The subscription key is optional (assigns can state their own scope); the table is not.
#[derive(Watch)]
#[watch(subscription_key = "list_id")]
struct Todo {
    id: i64,
    list_id: i64,
}

fn main() {}
