//! The schema pages: every subject, one subject's versions with a side-by-side diff of two of
//! them and the verdict of every compatibility level, and the "test this schema" check
//! before registering one.
//!
//! Not here: the catalog (`catalog.rs`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::{PageResult, Viewer, encode, page, result_area, shows_changes};
use crate::app::{ApiError, App};
use crate::schemas_api::{
    Comparison, Verdict, comparison, subject_views, version_view, with_registry,
};

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/schemas", get(list_page))
        .route("/schemas/{subject}", get(subject_page))
}

async fn list_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    let subjects = with_registry(&app, subject_views).await?;
    let body = html! {
        table data-figure="subjects" {
            thead { tr { th { "subject" } th.num { "versions" } th.num { "latest id" } th { "compatibility" } } }
            tbody {
                @for s in &subjects {
                    tr data-subject=(s.subject) {
                        td { a href=(format!("/schemas/{}", encode(&s.subject))) { (s.subject) } }
                        td.num data-figure="versions" { (s.versions.len()) }
                        td.num { (s.latest_id) }
                        td { (s.compatibility) }
                    }
                }
            }
        }
        @if subjects.is_empty() { p.muted { "No schema registered yet." } }
        @if shows_changes(viewer) {
            (candidate_form(None))
        }
    };
    Ok(page("Schemas", "/schemas", viewer, body))
}

/// `?old=&new=` of the comparison.
#[derive(Debug, Default, Deserialize)]
struct Versions {
    old: Option<u32>,
    new: Option<u32>,
}

async fn subject_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(subject): Path<String>,
    Query(wanted): Query<Versions>,
) -> PageResult {
    let (versions, compared) = {
        let subject = subject.clone();
        with_registry(&app, move |registry| {
            let versions = registry.versions(&subject, false)?;
            let latest = *versions.last().expect("a subject has a version");
            let new = wanted.new.unwrap_or(latest);
            let old = wanted.old.unwrap_or_else(|| {
                versions
                    .iter()
                    .rev()
                    .find(|v| **v < new)
                    .copied()
                    .unwrap_or(new)
            });
            let compared = comparison(registry, &subject, old, new)?;
            Ok::<_, ApiError>((versions, compared))
        })
        .await?
    };
    let latest = {
        let subject = subject.clone();
        let version = *versions.last().expect("a subject has a version");
        with_registry(&app, move |r| version_view(r, &subject, version)).await?
    };
    let encoded = encode(&subject);
    let body = html! {
        p { a href="/schemas" { "← subjects" } " · " a href=(format!("/topics?q={}", encoded)) { "topics" } }
        form.panel.inline method="get" #compare {
            label { "Old" select name="old" { @for v in &versions { option value=(v) selected[*v == compared.old.version] { "version " (v) } } } }
            label { "New" select name="new" { @for v in &versions { option value=(v) selected[*v == compared.new.version] { "version " (v) } } } }
            button.secondary type="submit" { "Compare" }
        }
        (diff_view(&compared))
        h2 { "Verdicts: could version " (compared.new.version) " be registered after version " (compared.old.version) "?" }
        (verdict_table(&compared.verdicts))
        @if shows_changes(viewer) {
            (candidate_form(Some((&subject, &serde_json::to_string_pretty(&latest.schema).unwrap_or_default()))))
        }
    };
    Ok(page(&format!("Schema {subject}"), "/schemas", viewer, body))
}

/// The two schemas' pretty-printed lines side by side, lines only one side has marked.
fn diff_view(compared: &Comparison) -> Markup {
    let old = serde_json::to_string_pretty(&compared.old.schema).unwrap_or_default();
    let new = serde_json::to_string_pretty(&compared.new.schema).unwrap_or_default();
    let rows = side_by_side(
        &old.lines().collect::<Vec<_>>(),
        &new.lines().collect::<Vec<_>>(),
    );
    html! {
        div.diff data-figure="diff" {
            div.muted { "version " (compared.old.version) " (id " (compared.old.id) ")" }
            div.muted { "version " (compared.new.version) " (id " (compared.new.id) ")" }
            @for (left, right) in &rows {
                @match left { Some((text, changed)) => div class=[changed.then_some("removed")] { (text) }, None => div {} }
                @match right { Some((text, changed)) => div class=[changed.then_some("added")] { (text) }, None => div {} }
            }
        }
    }
}

/// A line diff (longest common subsequence) as rows of (old line, new line), each marked
/// changed when the other side does not have it.
type Side<'a> = Option<(&'a str, bool)>;

fn side_by_side<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Side<'a>, Side<'a>)> {
    let (n, m) = (old.len(), new.len());
    let mut common = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut rows = Vec::new();
    while i < n || j < m {
        if i < n && j < m && old[i] == new[j] {
            rows.push((Some((old[i], false)), Some((new[j], false))));
            i += 1;
            j += 1;
        } else if j < m && (i == n || common[i][j + 1] >= common[i + 1][j]) {
            rows.push((None, Some((new[j], true))));
            j += 1;
        } else {
            rows.push((Some((old[i], true)), None));
            i += 1;
        }
    }
    rows
}

fn verdict_table(verdicts: &[Verdict]) -> Markup {
    html! {
        table data-figure="verdicts" {
            thead { tr { th { "level" } th { "verdict" } th { "why not" } } }
            tbody {
                @for v in verdicts {
                    tr data-level=(v.level) {
                        td.mono { (v.level) }
                        td { @if v.compatible { span.verdict.yes { "compatible" } } @else { span.verdict.no { "incompatible" } } }
                        td { @for p in &v.problems { div { (p) } } }
                    }
                }
            }
        }
    }
}

/// "Test this schema" and register it; `subject` fixes the subject, with the latest schema
/// as the starting text.
fn candidate_form(subject: Option<(&str, &str)>) -> Markup {
    let (name, text) =
        subject.unwrap_or(("", "{\n  \"type\": \"object\",\n  \"properties\": {}\n}"));
    let path = |action: &str| format!("/api/schemas/{}/{action}", encode(name));
    html! {
        form.panel #candidate data-api=(path("check")) data-method="POST" data-render="json"
            data-done="{level}: compatible = {compatible}" {
            h2 { "Test a schema before registering it" }
            @if subject.is_none() {
                label { "Subject (the event type)" input name="subject_name" data-skip required placeholder="order.placed"
                    oninput="const f=this.form;const s=encodeURIComponent(this.value);f.dataset.api='/api/schemas/'+s+'/check';f.querySelector('[data-register]').dataset.api='/api/schemas/'+s+'/versions';"; }
            }
            label { "JSON Schema" textarea name="schema" data-type="json" { (text) } }
            div.toolbar {
                button.secondary type="submit" data-preview { "Test this schema" }
                button type="submit" data-register data-api=(path("versions")) data-done="registered version {version} (id {id})" data-needs-preview disabled { "Register" }
            }
            (result_area())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_pairs_common_lines_and_marks_the_rest() {
        let rows = side_by_side(&["{", "a", "b", "}"], &["{", "a", "c", "}"]);
        assert_eq!(
            rows,
            vec![
                (Some(("{", false)), Some(("{", false))),
                (Some(("a", false)), Some(("a", false))),
                (None, Some(("c", true))),
                (Some(("b", true)), None),
                (Some(("}", false)), Some(("}", false))),
            ]
        );
    }
}
