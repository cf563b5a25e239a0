//! `Ticket::parse` never panics, and it is strict: when it accepts a string,
//! `expose()` gives back exactly that string (one spelling per ticket), and
//! parsing the exposed form again yields the same key id and secret bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsticket::domain::{TICKET_PREFIX, Ticket};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ticket) = Ticket::parse(input) else {
        return;
    };
    let exposed = ticket.expose();
    assert_eq!(
        exposed, input,
        "a ticket was accepted in a non-canonical spelling"
    );
    assert!(exposed.starts_with(TICKET_PREFIX));
    let again = Ticket::parse(&exposed).expect("the exposed form must parse");
    assert_eq!(again.kid(), ticket.kid());
    assert_eq!(again.secret_bytes(), ticket.secret_bytes());
    // Debug must never show the secret.
    assert_eq!(format!("{ticket:?}"), "Ticket(***)");
});
