//! Target URLs (SPEC §4): every scheme parses into the right [`TargetUrl`], malformed URLs give
//! a clear error that never quotes the secret parts, and `redact_url` hides them.

use proptest::prelude::*;
use std::path::PathBuf;
use vast_supervisor::config::{parse_target_url, redact_url, EmailSecurity, TargetUrl};

fn parse(s: &str) -> TargetUrl {
    match parse_target_url(s) {
        Ok(url) => url,
        Err(e) => panic!("{s} did not parse: {e}"),
    }
}

fn error(s: &str) -> String {
    match parse_target_url(s) {
        Ok(url) => panic!("{s} parsed unexpectedly: {url:?}"),
        Err(e) => e,
    }
}

#[test]
fn discord_short_and_native_forms() {
    for s in [
        "discord://123456/tok-EN_1",
        "https://discord.com/api/webhooks/123456/tok-EN_1",
        "https://discordapp.com/api/webhooks/123456/tok-EN_1/",
        "https://discord.com/api/v10/webhooks/123456/tok-EN_1",
        "DISCORD://123456/tok-EN_1",
    ] {
        match parse(s) {
            TargetUrl::Discord {
                webhook_id,
                token,
                endpoint: None,
            } => {
                assert_eq!(webhook_id, "123456", "{s}");
                assert_eq!(token.expose(), "tok-EN_1", "{s}");
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    match parse("discord://1/t?endpoint=http://127.0.0.1:8080") {
        TargetUrl::Discord {
            endpoint: Some(endpoint),
            ..
        } => assert_eq!(endpoint.as_str(), "http://127.0.0.1:8080/"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn slack_and_telegram() {
    match parse("slack://T000/B000/XXXX") {
        TargetUrl::Slack {
            tokens,
            endpoint: None,
        } => assert_eq!(tokens.expose(), "T000/B000/XXXX"),
        other => panic!("{other:?}"),
    }
    match parse("https://hooks.slack.com/services/T000/B000/XXXX") {
        TargetUrl::Slack { tokens, .. } => assert_eq!(tokens.expose(), "T000/B000/XXXX"),
        other => panic!("{other:?}"),
    }
    match parse("tgram://123456789:AAbb-cc_DD/-1001234?endpoint=https://127.0.0.1:9") {
        TargetUrl::Telegram {
            bot_token,
            chat_id,
            endpoint: Some(endpoint),
        } => {
            assert_eq!(bot_token.expose(), "123456789:AAbb-cc_DD");
            assert_eq!(chat_id, "-1001234");
            assert_eq!(endpoint.scheme(), "https");
        }
        other => panic!("{other:?}"),
    }
    match parse("tgram://bot42:key/@my_channel") {
        TargetUrl::Telegram {
            bot_token, chat_id, ..
        } => {
            assert_eq!(bot_token.expose(), "42:key");
            assert_eq!(chat_id, "@my_channel");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ntfy_with_every_kind_of_auth() {
    match parse("ntfy://ntfy.example.com/alerts") {
        TargetUrl::Ntfy {
            tls: false,
            host,
            port: None,
            topic,
            auth: None,
            endpoint: None,
        } => {
            assert_eq!(host, "ntfy.example.com");
            assert_eq!(topic, "alerts");
        }
        other => panic!("{other:?}"),
    }
    match parse("ntfys://us%40er:p%3Ass@ntfy.example.com:8443/vast-alerts") {
        TargetUrl::Ntfy {
            tls: true,
            port: Some(8443),
            auth: Some(auth),
            ..
        } => assert_eq!(auth.expose(), "us@er:p:ss"),
        other => panic!("{other:?}"),
    }
    match parse("ntfys://tk_abc@ntfy.sh/t1?endpoint=http://127.0.0.1:1234") {
        TargetUrl::Ntfy {
            auth: Some(auth),
            endpoint: Some(_),
            ..
        } => assert_eq!(auth.expose(), "tk_abc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pushover_and_gotify() {
    match parse("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi") {
        TargetUrl::Pushover {
            user_key,
            app_token,
            endpoint: None,
        } => {
            assert_eq!(user_key.expose(), "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
            assert_eq!(app_token.expose(), "azGDORePK8gMaC0QOYAMyEEuzJnyUi");
        }
        other => panic!("{other:?}"),
    }
    match parse("gotify://gotify.lan/AppToken1") {
        TargetUrl::Gotify {
            tls: false,
            host,
            port: None,
            path,
            token,
            endpoint: None,
        } => {
            assert_eq!(host, "gotify.lan");
            assert_eq!(path, "");
            assert_eq!(token.expose(), "AppToken1");
        }
        other => panic!("{other:?}"),
    }
    match parse("gotifys://example.com:8443/sub/dir/AppToken1") {
        TargetUrl::Gotify {
            tls: true,
            port: Some(8443),
            path,
            token,
            ..
        } => {
            assert_eq!(path, "/sub/dir");
            assert_eq!(token.expose(), "AppToken1");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn email_ports_security_and_sender() {
    let email = |s: &str| match parse(s) {
        TargetUrl::Email {
            security,
            host,
            port,
            user,
            password,
            from,
            to,
        } => (
            security,
            host,
            port,
            user,
            password.map(|p| p.expose().to_string()),
            from,
            to,
        ),
        other => panic!("{other:?}"),
    };
    let (security, host, port, user, password, from, to) =
        email("mailto://alerts:pa%2Fss@mail.example.com?to=ops@example.com");
    assert_eq!(security, EmailSecurity::Opportunistic);
    assert_eq!(host, "mail.example.com");
    assert_eq!(port, 25);
    assert_eq!(user.as_deref(), Some("alerts"));
    assert_eq!(password.as_deref(), Some("pa/ss"));
    assert_eq!(from, "alerts@mail.example.com");
    assert_eq!(to, vec!["ops@example.com"]);

    let (security, _, port, user, _, from, to) = email(
        "mailtos://me%40gmail.com:app-pass@smtp.gmail.com?to=a@example.com,b+tag@example.com",
    );
    assert_eq!(security, EmailSecurity::StartTls);
    assert_eq!(port, 587);
    assert_eq!(user.as_deref(), Some("me@gmail.com"));
    assert_eq!(from, "me@gmail.com");
    assert_eq!(to, vec!["a@example.com", "b+tag@example.com"]);

    let (security, _, port, ..) = email("mailtos://u:p@smtp.example.com:465?to=x@example.com");
    assert_eq!((security, port), (EmailSecurity::ImplicitTls, 465));

    let (security, _, port, user, password, from, to) =
        email("mailto://127.0.0.1:2525?to=x@example.com&to=y@example.com&from=daemon@example.com");
    assert_eq!((security, port), (EmailSecurity::Opportunistic, 2525));
    assert_eq!((user, password), (None, None));
    assert_eq!(from, "daemon@example.com");
    assert_eq!(to, vec!["x@example.com", "y@example.com"]);
}

#[test]
fn webhook_file_and_console() {
    match parse(
        "jsons://bob:s%40cret@hooks.example.com:8443/api/hook?endpoint=http://127.0.0.1:9000",
    ) {
        TargetUrl::Webhook {
            tls: true,
            host,
            port: Some(8443),
            path,
            basic_auth: Some((user, password)),
            endpoint: Some(endpoint),
        } => {
            assert_eq!(host, "hooks.example.com");
            assert_eq!(path, "/api/hook");
            assert_eq!(user, "bob");
            assert_eq!(password.expose(), "s@cret");
            assert_eq!(endpoint.port(), Some(9000));
        }
        other => panic!("{other:?}"),
    }
    match parse("json://[::1]:8080") {
        TargetUrl::Webhook {
            tls: false,
            host,
            path,
            basic_auth: None,
            ..
        } => {
            assert_eq!(host, "[::1]");
            assert_eq!(path, "/");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse("file:///var/log/vast%20events.jsonl"),
        TargetUrl::File {
            path: PathBuf::from("/var/log/vast events.jsonl")
        }
    );
    assert_eq!(parse("console://"), TargetUrl::Console);
}

#[test]
fn malformed_urls_explain_the_expected_shape() {
    let cases = [
        (
            "discord://webhook/SECRET-TOKEN",
            "discord URL must look like discord://WEBHOOK_ID/WEBHOOK_TOKEN (the webhook id must be a number)",
        ),
        (
            "discord://123",
            "discord URL must look like discord://WEBHOOK_ID/WEBHOOK_TOKEN (expected exactly a webhook id and a token)",
        ),
        (
            "https://discord.com/api/hooks/1/SECRET",
            "discord URL must look like https://discord.com/api/webhooks/WEBHOOK_ID/WEBHOOK_TOKEN (expected /api/webhooks/ followed by a webhook id and a token)",
        ),
        (
            "https://example.com/hook/SECRET",
            "https:// URLs are accepted only as Discord or Slack webhook URLs (https://discord.com/api/webhooks/WEBHOOK_ID/WEBHOOK_TOKEN); use jsons://HOST/PATH for a generic webhook",
        ),
        (
            "slack://A/SECRET",
            "slack URL must look like slack://TOKEN_A/TOKEN_B/TOKEN_C (expected exactly three tokens; channels in the URL are not supported)",
        ),
        (
            "tgram://SECRET/12345",
            "telegram URL must look like tgram://BOT_TOKEN/CHAT_ID (the bot token must look like 123456789:ABC-DEF...)",
        ),
        (
            "ntfys://user:SECRET@ntfy.sh",
            "ntfy URL must look like ntfys://[USER:PASSWORD@ or TOKEN@]HOST[:PORT]/TOPIC (expected exactly one topic after the host)",
        ),
        (
            "pover://SECRET",
            "pushover URL must look like pover://USER_KEY@APP_TOKEN (the \"@\" between user key and app token is missing)",
        ),
        (
            "gotify://gotify.lan",
            "gotify URL must look like gotify://HOST[:PORT][/PATH]/APP_TOKEN (the app token is missing)",
        ),
        (
            "mailtos://user:SECRET@smtp.example.com",
            "email URL must look like mailtos://USER:PASSWORD@HOST[:PORT]?to=ADDRESS[,ADDRESS][&from=ADDRESS] (to=ADDRESS is missing)",
        ),
        (
            "mailto://user:SECRET@smtp.example.com:99999?to=a@example.com",
            "email URL must look like mailto://USER:PASSWORD@HOST[:PORT]?to=ADDRESS[,ADDRESS][&from=ADDRESS] (the port must be a number from 1 to 65535)",
        ),
        (
            "json://user:SECRET@/path",
            "webhook URL must look like json://[USER:PASSWORD@]HOST[:PORT]/PATH (the host is missing)",
        ),
        (
            "file://relative/SECRET.jsonl",
            "file URL must look like file:///ABSOLUTE/PATH.jsonl (the path must be absolute: three slashes after \"file:\")",
        ),
        ("console://SECRET", "console URL is just console:// (nothing after it)"),
        ("discrod://1/SECRET", "unknown URL scheme \"discrod\" (did you mean \"discord\"?)"),
        (
            "SECRET",
            "not a target URL: expected SCHEME://..., e.g. discord://WEBHOOK_ID/WEBHOOK_TOKEN",
        ),
        (
            "discord://1/SECRET?endpoint=ftp://127.0.0.1",
            "discord URL: endpoint= must be an http:// or https:// base URL such as http://127.0.0.1:8080",
        ),
        (
            "discord://1/SECRET?endpont=http://127.0.0.1",
            "discord URL has unknown parameter \"endpont\" (did you mean \"endpoint\"?)",
        ),
        (
            "json://host/p?SECRETSECRETSECRETSECRET",
            "json URL has an unknown parameter (accepted: endpoint)",
        ),
        (
            "mailto://u:SECRET@host?to=a@example.com&endpoint=http://127.0.0.1",
            "mailto URL has unknown parameter \"endpoint\" (accepted: to, from)",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(error(input), expected, "for {input}");
    }
}

#[test]
fn redaction_keeps_scheme_and_host_only() {
    let cases = [
        ("discord://123/SECRET", "discord://123/***"),
        (
            "https://discord.com/api/webhooks/123/SECRET?endpoint=http://127.0.0.1:8080/x",
            "discord://123/***?endpoint=http://127.0.0.1:8080",
        ),
        ("slack://SECRET/SECRET/SECRET", "slack://***/***/***"),
        ("tgram://1:SECRET/-100", "tgram://***/-100"),
        (
            "ntfys://u:SECRET@ntfy.sh:8443/SECRET",
            "ntfys://***@ntfy.sh:8443/***",
        ),
        ("pover://SECRET@SECRET", "pover://***@***"),
        ("gotifys://host/sub/SECRET", "gotifys://host/sub/***"),
        (
            "mailtos://me:SECRET@smtp.example.com:465?to=a@example.com",
            "mailtos://***@smtp.example.com:465",
        ),
        (
            "jsons://u:SECRET@hooks.example.com/SECRET",
            "jsons://***@hooks.example.com/***",
        ),
        ("json://127.0.0.1:9000", "json://127.0.0.1:9000/"),
        ("file:///var/log/x.jsonl", "file:///var/log/x.jsonl"),
        ("console://", "console://"),
        ("discord://SECRET", "discord://***"),
        ("SECRET", "***"),
    ];
    for (input, expected) in cases {
        assert_eq!(redact_url(input), expected, "for {input}");
    }
}

fn templates(token: &str) -> Vec<String> {
    [
        "discord://12345/{T}",
        "discord://{T}/{T}",
        "discord://{T}",
        "https://discord.com/api/webhooks/1/{T}",
        "https://{T}.example.com/{T}",
        "slack://{T}/{T}/{T}",
        "slack://{T}",
        "tgram://1:{T}/1",
        "tgram://{T}/1/2",
        "ntfys://u:{T}@h/topic",
        "ntfys://{T}@h:{T}/x",
        "pover://{T}@{T}",
        "pover://{T}",
        "gotify://h/{T}",
        "gotify://{T}:{T}@h/{T}",
        "mailtos://u:{T}@h:465?to=a@b.c",
        "mailtos://u:{T}@h:{T}?to=a@b.c",
        "mailto://u:{T}@h",
        "jsons://u:{T}@h/hook",
        "json://u:{T}@/",
        "json://h/p?{T}",
        "json://h/p?{T}={T}",
        "{T}://x",
        "{T}",
        "console://{T}",
        "file://{T}/x",
    ]
    .iter()
    .map(|t| t.replace("{T}", token))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the URL, neither the error, the Debug output nor the redacted form contains the
    /// secret token placed in it.
    #[test]
    fn secrets_never_leak(token in "[a-z][A-Za-z0-9]{11,23}") {
        for input in templates(&token) {
            match parse_target_url(&input) {
                Ok(url) => prop_assert!(!format!("{url:?}").contains(&token), "{input}"),
                Err(e) => prop_assert!(!e.contains(&token), "{input}: {e}"),
            }
            prop_assert!(!redact_url(&input).contains(&token), "{input}");
        }
    }

    /// Arbitrary input never panics.
    #[test]
    fn arbitrary_input_is_an_error_not_a_panic(input in "\\PC{0,80}") {
        let _ = parse_target_url(&input);
        let _ = redact_url(&input);
    }
}
