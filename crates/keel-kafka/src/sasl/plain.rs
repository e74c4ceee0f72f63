//! SASL/PLAIN (RFC 4616): the client's one message, `authzid NUL authcid NUL password`,
//! parsed apart from the password check so the parser can be fuzzed without a user database.

use super::users::Users;

/// A PLAIN message's parts, borrowed from the client's bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    /// The identity to act as; empty means the user itself.
    pub authzid: &'a str,
    /// The user authenticating.
    pub user: &'a str,
    /// The password, as sent.
    pub password: &'a str,
}

/// Splits a PLAIN message; the error says what is wrong with it in one line.
pub fn parse(bytes: &[u8]) -> Result<PlainMessage<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "PLAIN message is not UTF-8".to_string())?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("PLAIN message is not authzid NUL user NUL password".into());
    };
    if user.is_empty() {
        return Err("PLAIN message names no user".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(format!(
            "PLAIN authorization id '{authzid}' differs from '{user}'"
        ));
    }
    Ok(PlainMessage {
        authzid,
        user,
        password,
    })
}

/// Authenticates a PLAIN message against any SCRAM credential of its user; the user on
/// success.
pub(crate) fn authenticate(bytes: &[u8], users: &Users) -> Result<String, String> {
    let message = parse(bytes)?;
    let credentials = users.credentials(message.user);
    if credentials.is_empty() {
        return Err(format!("unknown user '{}'", message.user));
    }
    if credentials
        .iter()
        .any(|c| c.matches_password(message.password))
    {
        Ok(message.user.to_string())
    } else {
        Err(format!("wrong password for '{}'", message.user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_split_into_its_three_parts() {
        assert_eq!(
            parse(b"alice\0alice\0p w").unwrap(),
            PlainMessage {
                authzid: "alice",
                user: "alice",
                password: "p w"
            }
        );
        assert_eq!(parse(b"\0alice\0").unwrap().password, "");
    }

    #[test]
    fn malformed_messages_are_refused_in_one_line() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"alice",
                "PLAIN message is not authzid NUL user NUL password",
            ),
            (
                b"\0alice\0pen\0cil",
                "PLAIN message is not authzid NUL user NUL password",
            ),
            (b"\0\0pencil", "PLAIN message names no user"),
            (b"\xff\0alice\0pencil", "PLAIN message is not UTF-8"),
            (
                b"bob\0alice\0pencil",
                "PLAIN authorization id 'bob' differs from 'alice'",
            ),
        ];
        for (message, reason) in cases {
            assert_eq!(parse(message).unwrap_err(), *reason, "{message:?}");
        }
    }
}
