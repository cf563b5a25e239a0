//! Values parsed at the boundary. Once a request has been turned into these
//! types, the core never sees an invalid origin, user id, audience or ticket.

mod audience;
mod claims;
mod limits;
mod origin;
mod ticket;
mod user_id;

pub use audience::Audience;
pub(crate) use audience::AudienceScope;
pub(crate) use claims::Claims;
pub(crate) use limits::{Cidr, Rate, client_ip};
pub use origin::{Origin, OriginAllowlist, OriginError};
pub use ticket::{KeyId, TICKET_PREFIX, Ticket, TicketSyntaxError};
pub use user_id::UserId;
