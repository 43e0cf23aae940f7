//! The counter view (also driven by the browser tests, which include this file).

use std::time::Duration;

use live_core::{Assigns, Ctx, Event, LiveView, Markup, Mount, ViewError, html};

/// The counter's assigns.
#[derive(Assigns)]
pub struct Counter {
    count: i64,
    ticks: u64,
}

/// Server-side messages: a timer tick.
pub enum Tick {
    Tick,
}

impl LiveView for Counter {
    type State = ();
    type Message = Tick;

    async fn mount(ctx: &mut Mount<'_, Self>) -> Result<Self, ViewError> {
        let start = ctx.params().parse::<i64>("start").unwrap_or(0);
        Ok(Counter {
            count: start,
            ticks: 0,
        })
    }

    fn title(&self) -> Option<String> {
        Some(format!("Count: {}", self.count))
    }

    fn render(&self) -> Markup {
        html! {
            main.counter {
                h1 { "Count: " span #count { (self.count) } }
                button #dec live-click="dec" { "−" }
                button #inc live-click="inc" { "+" }
                button #add live-click="add" live-value-by="10" { "+10" }
                p {
                    "Server ticks since you started them: " span #ticks { (self.ticks) } " "
                    button #start live-click="start_ticks" { "Start ticking" }
                }
                p { label { "Type here; the page updates around you: " input #note type="text" name="note"; } }
            }
        }
    }

    async fn handle_event(
        &mut self,
        event: Event,
        ctx: &mut Ctx<'_, Self>,
    ) -> Result<(), ViewError> {
        match event.name.as_str() {
            "inc" => self.count += 1,
            "dec" => self.count -= 1,
            "add" => self.count += event.get_as::<i64>("by")?,
            "start_ticks" => ctx.send_after(Duration::from_millis(200), Tick::Tick),
            _ => return Err(ViewError::UnknownEvent(event.name)),
        }
        Ok(())
    }

    async fn handle_info(&mut self, msg: Tick, ctx: &mut Ctx<'_, Self>) -> Result<(), ViewError> {
        match msg {
            Tick::Tick => {
                self.ticks += 1;
                ctx.send_after(Duration::from_millis(200), Tick::Tick);
            }
        }
        Ok(())
    }
}
