//! The create-order form.
//!
//! It is an `ActionForm`: before hydration it is a plain HTML form that posts to the server
//! function (which redirects to the new order, or back here with the errors in the URL); after
//! hydration it submits without a reload and item rows can be added and removed.

use crate::api::{CreateOrder, UiError, suggest_customer_id};
use crate::dto::FieldErrorDto;
use crate::format;
use leptos::prelude::*;

/// The unit of the unit price: typed in whole units with cents after the point, kept in cents.
const UNIT_PRICE_HINT: &str = "in units.cents: 12.50 = 1250 cents";

/// Field paths of the server's validation errors → message, for one field.
fn message_for(errors: &[FieldErrorDto], field: &str) -> Option<String> {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.clone())
        .reduce(|a, b| format!("{a}; {b}"))
}

#[component]
pub fn OrderForm() -> impl IntoView {
    let create = ServerAction::<CreateOrder>::new();
    let suggested = OnceResource::new(suggest_customer_id());
    // Stable keys of the item rows; their position gives the index in the field names.
    let rows = RwSignal::new(vec![0usize]);
    let next_key = StoredValue::new(1usize);

    let errors = Signal::derive(move || match create.value().get() {
        Some(Err(UiError::Invalid(errors))) => errors,
        _ => Vec::new(),
    });
    let failure = move || match create.value().get() {
        Some(Err(UiError::Invalid(_))) | None | Some(Ok(_)) => None,
        Some(Err(e)) => Some(e.to_string()),
    };
    let add_row = move |_| {
        let key = next_key.get_value();
        next_key.set_value(key + 1);
        rows.update(|r| r.push(key));
    };
    let remove_row = Callback::new(move |key: usize| rows.update(|r| r.retain(|k| *k != key)));
    let can_remove = Signal::derive(move || rows.with(|r| r.len() > 1));
    let customer_error = Signal::derive(move || message_for(&errors.get(), "customer_id"));
    let items_error = Signal::derive(move || message_for(&errors.get(), "items"));

    view! {
        <ActionForm action=create attr:class="card order-form" attr:novalidate=true>
            <h2 id="new-order">"New order"</h2>
            <Show when=move || !errors.get().is_empty()>
                <div class="alert alert-error" role="alert">
                    <p>"Please fix the highlighted fields:"</p>
                    <ul>
                        {move || errors.get().into_iter()
                            .map(|e| view! { <li><strong>{format::field_label(&e.field)}</strong>": "{e.message}</li> })
                            .collect_view()}
                    </ul>
                </div>
            </Show>
            {move || failure().map(|m| view! { <div class="alert alert-error" role="alert">{m}</div> })}
            <div class="field">
                <label for="customer_id">"Customer id"</label>
                <Suspense fallback=|| view! { <CustomerInput value=String::new() error=Signal::stored(None)/> }>
                    {move || Suspend::new(async move {
                        let value = suggested.await.unwrap_or_default();
                        view! { <CustomerInput value error=customer_error/> }
                    })}
                </Suspense>
                <FieldMessage id="customer_id-error" message=customer_error/>
            </div>
            <fieldset class="items">
                <legend>"Items"</legend>
                <For each=move || rows.get() key=|k| *k let:key>
                    <ItemRow
                        key
                        index=Signal::derive(move || rows.with(|r| r.iter().position(|k| *k == key).unwrap_or(0)))
                        errors
                        can_remove
                        on_remove=remove_row
                    />
                </For>
                <FieldMessage id="items-error" message=items_error/>
                <button type="button" class="button button-secondary" on:click=add_row>"Add item"</button>
            </fieldset>
            <div class="form-actions">
                <button type="submit" class="button" disabled=move || create.pending().get()>
                    {move || if create.pending().get() { "Creating…" } else { "Create order" }}
                </button>
            </div>
        </ActionForm>
    }
}

#[component]
fn CustomerInput(value: String, error: Signal<Option<String>>) -> impl IntoView {
    view! {
        <input
            id="customer_id"
            name="customer_id"
            type="text"
            value=value
            autocomplete="off"
            spellcheck="false"
            class="mono"
            aria-invalid=move || error.get().is_some().to_string()
            aria-describedby="customer_id-error"
        />
    }
}

/// An error message under a field, announced to screen readers.
#[component]
fn FieldMessage(
    #[prop(into)] id: Signal<String>,
    #[prop(into)] message: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <p class="field-error" id=id aria-live="polite">{move || message.get()}</p>
    }
}

/// One item line: SKU, quantity and unit price, with their errors.
#[component]
fn ItemRow(
    key: usize,
    index: Signal<usize>,
    errors: Signal<Vec<FieldErrorDto>>,
    can_remove: Signal<bool>,
    on_remove: Callback<usize>,
) -> impl IntoView {
    let error = move |field: &'static str| {
        Signal::derive(move || {
            message_for(&errors.get(), &format!("items[{}].{field}", index.get()))
        })
    };
    // `hint` says what to type (the unit), under the input.
    let input = move |field: &'static str,
                      label: &'static str,
                      hint: Option<&'static str>,
                      mode: &'static str,
                      initial: &'static str| {
        let id = format!("item-{key}-{field}");
        let error_id = format!("{id}-error");
        let hint_id = format!("{id}-hint");
        let described_by = match hint {
            Some(_) => format!("{hint_id} {error_id}"),
            None => error_id.clone(),
        };
        let message = error(field);
        view! {
            <div class=format!("field field-{field}")>
                <label for=id.clone()>{label}</label>
                <input
                    id=id
                    name=move || format!("items[{}][{field}]", index.get())
                    type="text"
                    inputmode=mode
                    value=initial
                    autocomplete="off"
                    aria-invalid=move || message.get().is_some().to_string()
                    aria-describedby=described_by
                />
                {hint.map(|h| view! { <span class="field-hint" id=hint_id>{h}</span> })}
                <FieldMessage id=error_id message/>
            </div>
        }
    };
    view! {
        <fieldset class="item-row">
            <legend>{move || format!("Item {}", index.get() + 1)}</legend>
            {input("sku", "SKU", None, "text", "")}
            {input("quantity", "Quantity", None, "numeric", "1")}
            {input("unit_price", "Unit price", Some(UNIT_PRICE_HINT), "decimal", "")}
            <button
                type="button"
                class="button button-ghost"
                disabled=move || !can_remove.get()
                aria-label=move || format!("Remove item {}", index.get() + 1)
                on:click=move |_| on_remove.run(key)
            >
                "Remove"
            </button>
        </fieldset>
    }
}
