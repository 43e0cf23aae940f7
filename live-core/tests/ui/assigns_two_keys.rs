use live_core::Assigns;

#[derive(Assigns)]
struct Page {
    #[subscription_key]
    list_id: i64,
    #[subscription_key]
    user_id: i64,
}

fn main() {}
