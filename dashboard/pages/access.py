"""Access (/access, admins only): who may use Vantage. The users, each disabled or enabled here; the
API tokens, each revoked here; and a form that makes a token, whose text is shown once.

Every change goes through dashboard/auth (``users.set_disabled``, ``tokens.revoke``,
``tokens.create``), which writes it and its audit record in one transaction, with the admin who
asked as the actor. Adding users and changing passwords or roles stay with ``vantage users``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html

from dashboard import guard, ids
from dashboard.auth import tokens, users
from dashboard.auth.users import UserError
from dashboard.context import current_actor, current_store, current_time
from dashboard.pages import fmt_time, store_error
from dashboard.privacy import ROLES
from dashboard.store.db import Store
from dashboard.theme import grid_options

dash.register_page(__name__, access="admin", path="/access", name="Access", title="Vantage · Access", order=7)

#: How long a new token is valid unless the admin says otherwise, in days.
DEFAULT_DAYS = 90

_SINGLE_ROW = {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
_STATE_CLASSES = {
    "vt-ok": "params.value == 'active'",
    "vt-bad": "params.value != null && params.value != 'active'",
}

USER_COLUMNS: list[dict[str, Any]] = [
    {"field": "name", "headerName": "User", "flex": 1, "minWidth": 180},
    {"field": "role", "headerName": "Role", "width": 120},
    {"field": "source", "headerName": "Source", "width": 110},
    {"field": "state", "headerName": "State", "width": 230, "cellClassRules": _STATE_CLASSES},
    {"field": "last_login", "headerName": "Last login (UTC)", "width": 200},
]

TOKEN_COLUMNS: list[dict[str, Any]] = [
    {"field": "id", "headerName": "Id", "width": 170},
    {"field": "name", "headerName": "Name", "flex": 1, "minWidth": 180, "tooltipField": "name"},
    {"field": "prefix", "headerName": "Starts with", "width": 140},
    {"field": "owner", "headerName": "Owner", "width": 160},
    {"field": "role", "headerName": "Role", "width": 110},
    {"field": "state", "headerName": "State", "width": 150, "cellClassRules": _STATE_CLASSES},
    {"field": "expires", "headerName": "Expires (UTC)", "width": 180},
    {"field": "last_used", "headerName": "Last used (UTC)", "width": 180},
]


# --- Rows ------------------------------------------------------------------------------------


def _when(value: datetime | None, never: str = "never") -> str:
    return never if value is None else fmt_time(value).removesuffix(" UTC")


def user_state(user: users.User, now: datetime) -> str:
    """``active``, ``disabled`` or ``locked until 2026-03-02 12:15`` (after repeated wrong passwords)."""
    if user.disabled:
        return "disabled"
    if user.locked_until is not None and user.locked_until > now:
        return f"locked until {_when(user.locked_until)}"
    return "active"


def user_rows(all_users: Sequence[users.User], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": u.name,
            "role": u.role,
            "source": u.source,
            "state": user_state(u, now),
            "last_login": _when(u.last_login_at),
        }
        for u in all_users
    ]


def token_rows(
    all_tokens: Sequence[tokens.Token], all_users: Sequence[users.User], now: datetime
) -> list[dict[str, Any]]:
    """Grid rows of the tokens, newest first; an active token whose owner is disabled does not work
    (``tokens.verify``), and says so."""
    disabled = {u.name for u in all_users if u.disabled}
    rows = []
    for t in all_tokens:
        state = t.state(now)
        if state == "active" and t.owner in disabled:
            state = "owner disabled"
        rows.append(
            {
                "id": t.id,
                "name": t.name,
                "prefix": f"{t.prefix}…",
                "owner": t.owner,
                "role": t.role,
                "state": state,
                "expires": _when(t.expires_at),
                "last_used": _when(t.last_used_at),
            }
        )
    return rows


def owner_options(all_users: Sequence[users.User]) -> list[dict[str, str]]:
    """Who may own a new token: every user not disabled."""
    return [{"label": f"{u.name} ({u.role})", "value": u.name} for u in all_users if not u.disabled]


def read_users(store: Store) -> list[users.User]:
    with store.connect() as conn:
        return users.list_users(conn)


def read_tokens(store: Store) -> tuple[list[tokens.Token], list[users.User]]:
    with store.connect() as conn:
        return tokens.list_tokens(conn), users.list_users(conn)


def selected_key(selected_rows: Any, key: str) -> str | None:
    """The ``key`` of the grid's selected row (rows, or ``{"ids": [...]}``), None when there is none."""
    if isinstance(selected_rows, Mapping):
        chosen = selected_rows.get("ids")
        first: Any = chosen[0] if isinstance(chosen, list) and chosen else None
        return first if isinstance(first, str) and first else None
    if isinstance(selected_rows, list) and selected_rows and isinstance(selected_rows[0], Mapping):
        value = selected_rows[0].get(key)
        return value if isinstance(value, str) and value else None
    return None


# --- Actions ---------------------------------------------------------------------------------


def set_user_disabled(
    store: Store, name: str | None, disabled: bool, *, actor: str, now: datetime
) -> tuple[dbc.Alert, bool]:
    """Disable or enable one user (audited by dashboard/auth); returns what to tell the admin and
    whether the user changed.

    An admin may not disable themselves: the session would end at once and, were they the last
    admin, nobody could enable them again.
    """
    if not name:
        return dbc.Alert("Select a user first.", color="warning"), False
    if disabled and name == actor:
        return dbc.Alert("You may not disable yourself; ask another admin.", color="danger"), False
    try:
        users.set_disabled(store, name, disabled, now=now, actor=actor)
    except UserError as err:
        return dbc.Alert(str(err), color="danger"), False
    done = "disabled: every session ends and its tokens stop working" if disabled else "enabled"
    return dbc.Alert(f"{name} {done}.", color="success"), True


def user_action(
    store: Store, trigger: Any, selected_rows: Any, changed: Any, *, actor: str, now: datetime
) -> tuple[Any, Any, Any, Any]:
    """The users callback: rows, the message, the bumped change counter (the tokens re-read) and the
    owners a new token may have."""
    if trigger not in (ids.ACCESS_DISABLE, ids.ACCESS_ENABLE):
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    try:
        message, done = set_user_disabled(
            store, selected_key(selected_rows, "name"), trigger == ids.ACCESS_DISABLE, actor=actor, now=now
        )
        all_users = read_users(store)
    except Exception as err:
        return dash.no_update, store_error(err), dash.no_update, dash.no_update
    if not done:
        return dash.no_update, message, dash.no_update, dash.no_update
    count = changed if isinstance(changed, int) and not isinstance(changed, bool) else 0
    return user_rows(all_users, now), message, count + 1, owner_options(all_users)


def revoke_token(store: Store, token_id: str | None, *, actor: str, now: datetime) -> Any:
    """Revoke one token (audited by dashboard/auth); returns what to tell the admin."""
    if not token_id:
        return dbc.Alert("Select a token first.", color="warning")
    try:
        token = tokens.revoke(store, token_id, now=now, actor=actor)
    except UserError as err:
        return dbc.Alert(str(err), color="danger")
    return dbc.Alert(f"Token {token.name!r} of {token.owner} revoked; it no longer works.", color="success")


def _days(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UserError("days: expected a number")
    try:
        return float(value)
    except (ValueError, OverflowError):
        raise UserError(f"days: expected a number, got {str(value)[:40]!r}") from None


def create_token(
    store: Store, name: Any, owner: Any, role: Any, days: Any, *, actor: str, now: datetime
) -> tuple[Any, Any]:
    """Make a token (audited by dashboard/auth): the message, and the token's text, shown this once."""
    try:
        token, text = tokens.create(
            store,
            name if isinstance(name, str) else "",
            owner=owner if isinstance(owner, str) else "",
            role=role if isinstance(role, str) else "",
            days=_days(days),
            now=now,
            actor=actor,
        )
    except UserError as err:
        return dbc.Alert(str(err), color="danger"), None
    until = _when(token.expires_at)
    created = dbc.Alert(
        [
            html.Div(f"Token {token.name!r} for {token.owner} ({token.role}), valid until {until} UTC:"),
            html.Code(text, className="user-select-all"),
            html.Div("Copy it now: it is not stored and will not be shown again.", className="small"),
        ],
        color="info",
    )
    return dbc.Alert("Token created.", color="success"), created


def token_action(
    store: Store,
    trigger: Any,
    selected_rows: Any,
    form: tuple[Any, Any, Any, Any],
    *,
    actor: str,
    now: datetime,
) -> tuple[Any, Any, Any, Any]:
    """The tokens callback: rows, the message, the new token's text (cleared by any other action) and
    the name box (cleared once a token is made). ``form`` is the name, owner, role and days."""
    created: Any = None
    name_box: Any = dash.no_update
    try:
        if trigger == ids.ACCESS_REVOKE:
            message = revoke_token(store, selected_key(selected_rows, "id"), actor=actor, now=now)
        elif trigger == ids.ACCESS_TOKEN_CREATE:
            message, created = create_token(store, *form, actor=actor, now=now)
            name_box = "" if created is not None else dash.no_update
        else:  # a user changed: its tokens' state may have
            message, created = dash.no_update, dash.no_update
    except Exception as err:
        return dash.no_update, store_error(err), None, dash.no_update
    # Read apart from the action: a token made must be shown even if the re-read then fails.
    try:
        rows: Any = token_rows(*read_tokens(store), now)
    except Exception:
        rows = dash.no_update
    return rows, message, created, name_box


# --- Layout ----------------------------------------------------------------------------------


def _grid(
    id_: str, columns: list[dict[str, Any]], rows: list[dict[str, Any]], row_id: str, empty: str
) -> dag.AgGrid:
    return dag.AgGrid(
        id=id_,
        columnDefs=columns,
        rowData=rows,
        getRowId=f"params.data.{row_id}",
        defaultColDef={"resizable": True, "sortable": True},
        dashGridOptions=grid_options(
            domLayout="autoHeight",
            rowSelection=_SINGLE_ROW,
            tooltipShowDelay=300,
            localeText={"noRowsToShow": empty},
        ),
        className="vt-grid",
    )


def _users_section(all_users: list[users.User], now: datetime) -> html.Div:
    return html.Div(
        [
            html.H2("Users", className="mt-4"),
            html.P(
                "Select a user, then disable or enable it. Disabling ends its sessions at once and "
                "stops its tokens.",
                className="text-secondary",
            ),
            _grid(ids.ACCESS_USERS_GRID, USER_COLUMNS, user_rows(all_users, now), "name", "No users"),
            html.Div(
                [
                    dbc.Button("Disable", id=ids.ACCESS_DISABLE, color="danger", size="sm"),
                    dbc.Button(
                        "Enable", id=ids.ACCESS_ENABLE, color="secondary", size="sm", className="ms-2"
                    ),
                ],
                className="mt-2 mb-2",
            ),
            html.Div(id=ids.ACCESS_USERS_RESULT, role="status"),
        ]
    )


def _create_form(all_users: list[users.User]) -> dbc.Card:
    def field(label: str, control: Any, **width: Any) -> dbc.Col:
        return dbc.Col([dbc.Label(label, html_for=control.id, className="vt-filter-label"), control], **width)

    return dbc.Card(
        [
            dbc.CardHeader("New token"),
            dbc.CardBody(
                [
                    dbc.Row(
                        [
                            field(
                                "Name",
                                dbc.Input(
                                    id=ids.ACCESS_TOKEN_NAME, placeholder="what or who uses it", maxLength=128
                                ),
                                md=4,
                            ),
                            field(
                                "Owner",
                                dbc.Select(
                                    id=ids.ACCESS_TOKEN_OWNER,
                                    options=owner_options(all_users),
                                    placeholder="choose a user",
                                ),
                                md=3,
                            ),
                            field(
                                "Role",
                                dbc.Select(
                                    id=ids.ACCESS_TOKEN_ROLE,
                                    options=[{"label": r, "value": r} for r in ROLES],
                                    value="viewer",
                                ),
                                md=2,
                            ),
                            field(
                                "Days",
                                dbc.Input(
                                    id=ids.ACCESS_TOKEN_DAYS,
                                    type="number",
                                    min=1,
                                    max=tokens.MAX_DAYS,
                                    value=DEFAULT_DAYS,
                                ),
                                md=1,
                            ),
                            dbc.Col(
                                dbc.Button("Create token", id=ids.ACCESS_TOKEN_CREATE, color="primary"),
                                md="auto",
                            ),
                        ],
                        className="g-3 align-items-end",
                    ),
                    html.P(
                        "A token has no more rights than its owner: its role may not exceed the owner's.",
                        className="text-secondary small mt-2 mb-0",
                    ),
                ]
            ),
        ],
        className="vt-card mt-3",
    )


def _tokens_section(all_tokens: list[tokens.Token], all_users: list[users.User], now: datetime) -> html.Div:
    return html.Div(
        [
            html.H2("API tokens", className="mt-4"),
            html.P("Select a token, then revoke it.", className="text-secondary"),
            _grid(
                ids.ACCESS_TOKENS_GRID,
                TOKEN_COLUMNS,
                token_rows(all_tokens, all_users, now),
                "id",
                "No tokens",
            ),
            dbc.Button("Revoke", id=ids.ACCESS_REVOKE, color="danger", size="sm", className="mt-2 mb-2"),
            html.Div(id=ids.ACCESS_TOKENS_RESULT, role="status"),
            _create_form(all_users),
            html.Div(id=ids.ACCESS_TOKEN_CREATED, className="mt-3", role="status"),
        ]
    )


def layout(**_query: str) -> html.Div:
    store, now = current_store(), current_time()
    try:
        all_tokens, all_users = read_tokens(store)
    except Exception as err:
        return html.Div([html.H1("Access"), store_error(err)])
    return html.Div(
        [
            dcc.Store(id=ids.ACCESS_CHANGED, data=0),
            html.H1("Access"),
            html.P(
                "Users and API tokens. Every change here is written to the audit log with your name.",
                className="text-secondary",
            ),
            _users_section(all_users, now),
            _tokens_section(all_tokens, all_users, now),
        ]
    )


# --- Callbacks -------------------------------------------------------------------------------


def register_callbacks(app: dash.Dash) -> None:
    @guard.callback(
        app,
        "admin",
        Output(ids.ACCESS_USERS_GRID, "rowData"),
        Output(ids.ACCESS_USERS_RESULT, "children"),
        Output(ids.ACCESS_CHANGED, "data"),
        Output(ids.ACCESS_TOKEN_OWNER, "options"),
        Input(ids.ACCESS_DISABLE, "n_clicks"),
        Input(ids.ACCESS_ENABLE, "n_clicks"),
        State(ids.ACCESS_USERS_GRID, "selectedRows"),
        State(ids.ACCESS_CHANGED, "data"),
        prevent_initial_call=True,
    )
    def _users(_disable: int | None, _enable: int | None, selected: Any, changed: Any) -> tuple[Any, ...]:
        return user_action(
            current_store(), ctx.triggered_id, selected, changed, actor=current_actor(), now=current_time()
        )

    @guard.callback(
        app,
        "admin",
        Output(ids.ACCESS_TOKENS_GRID, "rowData"),
        Output(ids.ACCESS_TOKENS_RESULT, "children"),
        Output(ids.ACCESS_TOKEN_CREATED, "children"),
        Output(ids.ACCESS_TOKEN_NAME, "value"),
        Input(ids.ACCESS_REVOKE, "n_clicks"),
        Input(ids.ACCESS_TOKEN_CREATE, "n_clicks"),
        Input(ids.ACCESS_CHANGED, "data"),
        State(ids.ACCESS_TOKENS_GRID, "selectedRows"),
        State(ids.ACCESS_TOKEN_NAME, "value"),
        State(ids.ACCESS_TOKEN_OWNER, "value"),
        State(ids.ACCESS_TOKEN_ROLE, "value"),
        State(ids.ACCESS_TOKEN_DAYS, "value"),
        prevent_initial_call=True,
    )
    def _tokens(
        _revoke: int | None,
        _create: int | None,
        _changed: Any,
        selected: Any,
        name: Any,
        owner: Any,
        role: Any,
        days: Any,
    ) -> tuple[Any, ...]:
        return token_action(
            current_store(),
            ctx.triggered_id,
            selected,
            (name, owner, role, days),
            actor=current_actor(),
            now=current_time(),
        )
