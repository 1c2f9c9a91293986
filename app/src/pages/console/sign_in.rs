//! `/console/sign-in`: the admin token in, a session cookie out. A plain HTML form posting to
//! `/auth/sign-in`, so it works with or without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || {
        query
            .read()
            .get("next")
            .unwrap_or_else(|| "/console".into())
    };
    let error = move || query.read().get("error");
    let refused = move || error().is_some();
    let signed_out = move || query.read().get("signed_out").is_some();
    view! {
        <Title text="Sign in"/>
        <section class="card sign-in" aria-labelledby="sign-in-title">
            <h1 id="sign-in-title">"Sign in to the console"</h1>
            <p class="muted">
                "Use the admin token: the "<code>"ADMIN_TOKEN"</code>" setting, or, when it is not set, "
                "the token the server printed to its log at start-up."
            </p>
            {move || error().map(|e| {
                let text = if e == "throttled" {
                    "Too many wrong tokens from this address. Wait a few minutes, then try again."
                } else {
                    "That token is not right. Try again."
                };
                view! { <p class="alert alert-error" role="alert" id="sign-in-error">{text}</p> }
            })}
            {move || signed_out().then(|| view! {
                <p class="alert alert-success" role="status">"You are signed out."</p>
            })}
            <form method="post" action="/auth/sign-in" class="stack">
                <input type="hidden" name="next" value=next/>
                <label for="token">"Admin token"</label>
                <input
                    id="token"
                    name="token"
                    type="password"
                    required
                    autocomplete="current-password"
                    aria-describedby=move || refused().then_some("sign-in-error")
                />
                <button type="submit">"Sign in"</button>
            </form>
        </section>
    }
}
