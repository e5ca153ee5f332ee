//! The account pages, driven like a browser without JavaScript: GET a form, read its CSRF
//! token, POST it with the cookies and an `Origin`, follow the 303, read the page.

mod auth;
mod media;
mod orders;
mod profile;
