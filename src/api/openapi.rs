//! `GET /api/openapi.json`: the OpenAPI 3.0 description of this API,
//! written as data. A unit test checks that every route of
//! [`routes`](super::routes) is described, and nothing more.

use axum::Json;
use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// One phone rung for a call (`call_legs`).
fn leg_schema() -> Value {
    let (s, i) = (json!({"type": "string"}), json!({"type": "integer"}));
    json!({"type": "object", "properties": {
        "seq": i, "party": s, "role": {"type": "string", "enum": ["offer", "consult", "monitor", "transfer"]},
        "offered_at": i, "answered_at": {"type": "integer", "nullable": true}, "ended_at": i,
        "outcome": {"type": "string", "description": "connected, transferred, consulted, no_answer, busy, declined, cancelled, failed"}
    }})
}

/// A body that may be left out.
fn optional_body(schema: Value) -> Value {
    json!({"required": false, "content": {"application/json": {"schema": schema}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array(of: Value) -> Value {
    json!({"type": "array", "items": of})
}

fn path_id(desc: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

fn query(name: &str, desc: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

/// Standard error responses for an authenticated endpoint.
fn auth_errors(mut responses: Value) -> Value {
    if let Some(m) = responses.as_object_mut() {
        m.entry("401")
            .or_insert_with(|| err("missing, invalid or expired token"));
        m.entry("403")
            .or_insert_with(|| err("the role may not do this"));
    }
    responses
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "hotline API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agent desk, supervisor wallboard and ERP interface of the hotline call-centre server. \
                Log in with POST /api/login and send the token as `Authorization: Bearer TOKEN`. \
                Roles: agent (own calls and recordings, customer records), supervisor (everything), \
                admin (customer upsert, work-order import). Errors are {\"error\", \"code\"}."
        },
        "security": [{"bearer": []}],
        "paths": merge([paths_session(), paths_records(), paths_live(), paths_campaign(), paths_reports()]),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "token from POST /api/login"},
                "token": {"type": "apiKey", "in": "query", "name": "token", "description": "the same token, for WebSocket"}
            },
            "schemas": schemas()
        }
    })
}

fn paths_session() -> Value {
    json!({
            "/healthz": {"get": {
                "summary": "Liveness", "security": [], "operationId": "healthz",
                "responses": {"200": ok("up", json!({"type": "object", "properties": {"status": {"type": "string"}}}))}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics", "security": [], "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document", "security": [], "operationId": "openapi",
                "responses": {"200": ok("OpenAPI 3.0 document", json!({"type": "object"}))}
            }},
            "/api/login": {"post": {
                "summary": "Log in; returns a bearer token", "security": [], "operationId": "login",
                "requestBody": body(r("LoginRequest")),
                "responses": {"200": ok("logged in", r("LoginResponse")), "400": err("malformed body"), "401": err("unknown user or wrong password")}
            }},
            "/api/logout": {"post": {
                "summary": "Revoke the token of this request", "operationId": "logout",
                "responses": {"204": {"description": "logged out"}, "401": err("missing, invalid or expired token")}
            }},
            "/api/me": {"get": {
                "summary": "Who the token belongs to", "operationId": "me",
                "responses": {"200": ok("the principal", r("Principal")), "401": err("missing, invalid or expired token")}
            }},
    })
}

fn paths_records() -> Value {
    let time = json!({"type": "string", "description": "RFC 3339 or epoch milliseconds"});
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100});
    json!({
            "/api/customers": {
                "get": {
                    "summary": "Look a customer up by phone number (agent, supervisor)", "operationId": "findCustomer",
                    "parameters": [{"name": "phone", "in": "query", "required": true, "description": "any written form; normalised", "schema": {"type": "string"}}],
                    "responses": auth_errors(json!({"200": ok("the customer record", r("CustomerRecord")), "400": err("no phone given"), "404": err("no customer has that number")}))
                },
                "post": {
                    "summary": "Insert or update a customer with their phones (admin)", "operationId": "upsertCustomer",
                    "requestBody": body(r("CustomerInput")),
                    "responses": auth_errors(json!({"200": ok("updated", r("CustomerRecord")), "201": ok("created", r("CustomerRecord")), "400": err("malformed body"), "422": err("invalid values")}))
                }
            },
            "/api/customers/{id}": {"get": {
                "summary": "Customer record: customer, phones, work orders, calls, open cases (agent, supervisor)", "operationId": "getCustomer",
                "parameters": [path_id("customer id")],
                "responses": auth_errors(json!({"200": ok("the record", r("CustomerRecord")), "404": err("unknown customer")}))
            }},
            "/api/calls": {"get": {
                "summary": "Search calls, newest first (an agent sees only their own)", "operationId": "listCalls",
                "parameters": [
                    query("customer", "customer id", json!({"type": "string"})),
                    query("agent", "agent id (an agent may give only their own)", json!({"type": "string"})),
                    query("since", "arrived at or after", time.clone()),
                    query("until", "arrived before", time),
                    query("limit", "at most this many", limit.clone())
                ],
                "responses": auth_errors(json!({"200": ok("calls", array(r("Call"))), "400": err("bad parameter")}))
            }},
            "/api/calls/{id}": {"get": {
                "summary": "One call (an agent: only their own)", "operationId": "getCall",
                "parameters": [path_id("call id")],
                "responses": auth_errors(json!({"200": ok("the call", r("Call")), "404": err("unknown call")}))
            }},
            "/api/calls/{id}/recording": {"get": {
                "summary": "The call's recording as WAV; Range requests supported (an agent: only their own calls)", "operationId": "getRecording",
                "parameters": [path_id("call id")],
                "responses": auth_errors(json!({
                    "200": {"description": "WAV audio", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                    "206": {"description": "part of the WAV (Range)", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": err("unknown call, or it has no recording")
                }))
            }},
            "/api/calls/{id}/disposition": {"post": {
                "summary": "Record the outcome of an ended call (its agent or a supervisor)", "operationId": "setDisposition",
                "parameters": [path_id("call id")],
                "requestBody": body(r("DispositionInput")),
                "responses": auth_errors(json!({"200": ok("the updated call", r("Call")), "400": err("malformed body"), "404": err("unknown call"), "409": err("the call is still in progress"), "422": err("invalid values")}))
            }},
            "/api/calls/{id}/transfer": {"post": {
                "summary": "Blind transfer of a live call to an agent or a queue, with a note for the next agent (the connected agent or a supervisor)", "operationId": "transferCall",
                "parameters": [path_id("call id")],
                "requestBody": body(json!({"type": "object", "required": ["to"], "additionalProperties": false, "properties": {
                    "to": {"oneOf": [
                        {"type": "object", "required": ["agent"], "properties": {"agent": {"type": "string"}}},
                        {"type": "object", "required": ["queue"], "properties": {"queue": {"type": "string"}}},
                        {"type": "object", "required": ["number"], "properties": {"number": {"type": "string", "description": "an outside number on [acd] transfer_numbers; rung through transfer_gateway, the caller goes over when it answers"}}}
                    ]},
                    "note": {"type": "string", "maxLength": 4000}
                }})),
                "responses": auth_errors(json!({"200": ok("transferred; the call waits for the target", json!({"type": "object"})), "400": err("malformed body"), "404": err("the call is not live"), "409": err("the call is not connected to this agent"), "422": err("unknown or unavailable target")}))
            }},
            "/api/calls/{id}/consult": {"post": {
                "summary": "Attended transfer, step 1: the caller holds (music) while the agent to consult is rung; on answer the two agents talk (the connected agent or a supervisor)", "operationId": "consultAgent",
                "parameters": [path_id("call id")],
                "requestBody": body(json!({"type": "object", "required": ["agent"], "additionalProperties": false, "properties": {
                    "agent": {"type": "string"}, "note": {"type": "string", "maxLength": 4000}
                }})),
                "responses": auth_errors(json!({"200": ok("ringing the agent to consult", json!({"type": "object"})), "400": err("malformed body"), "404": err("the call is not live"), "409": err("not connected to this agent, a consultation is going on, or the agent is not ready"), "422": err("unknown agent")}))
            }},
            "/api/calls/{id}/consult/complete": {"post": {
                "summary": "Attended transfer, step 2: the caller goes to the consulted agent (who must have answered); the first agent's leg ends. Optional body {note}", "operationId": "completeConsult",
                "parameters": [path_id("call id")],
                "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {"note": {"type": "string", "maxLength": 4000}}})),
                "responses": auth_errors(json!({"200": ok("transferred", json!({"type": "object"})), "404": err("the call is not live"), "409": err("no consultation, or the consulted agent has not answered")}))
            }},
            "/api/calls/{id}/consult/cancel": {"post": {
                "summary": "Cancel the consultation: the consulted agent's leg ends, the caller is back with the first agent", "operationId": "cancelConsult",
                "parameters": [path_id("call id")],
                "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {"note": {"type": "string", "maxLength": 4000}}})),
                "responses": auth_errors(json!({"200": ok("back to the first agent", json!({"type": "object"})), "404": err("the call is not live"), "409": err("no consultation is going on")}))
            }},
            "/api/calls/{id}/monitor": {"post": {
                "summary": "Supervisor: call your registered phone (or `extension`) into a live call to listen (hear both sides), whisper (only the agent hears you) or barge (all three talk); again with another mode to switch", "operationId": "monitorCall",
                "parameters": [path_id("call id")],
                "requestBody": body(json!({"type": "object", "required": ["mode"], "additionalProperties": false, "properties": {
                    "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]}, "extension": {"type": "string"}
                }})),
                "responses": auth_errors(json!({"200": ok("calling the supervisor's phone", json!({"type": "object"})), "400": err("malformed body"), "404": err("the call is not live"), "409": err("no registered phone, or the call has no agent")}))
            }},
            "/api/calls/{id}/hold": {"post": {
                "summary": "Agent (own call) or supervisor: hold the caller (music; the agent hears no one) or resume; hold time counts on the call record", "operationId": "holdCall",
                "parameters": [path_id("call id")],
                "requestBody": body(json!({"type": "object", "required": ["hold"], "additionalProperties": false, "properties": {"hold": {"type": "boolean"}}})),
                "responses": auth_errors(json!({"200": ok("held or resumed", json!({"type": "object", "properties": {"call_id": {"type": "string"}, "agent": {"type": "string"}, "held": {"type": "boolean"}}})), "400": err("malformed body"), "403": err("another agent's call, or an admin"), "404": err("the call is not live"), "409": err("the call has no agent")}))
            }},
            "/api/calls/{id}/monitor/stop": {"post": {
                "summary": "Supervisor: hang up your monitoring leg", "operationId": "stopMonitor",
                "parameters": [path_id("call id")],
                "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {}})),
                "responses": auth_errors(json!({"200": ok("stopped", json!({"type": "object"})), "404": err("the call is not live")}))
            }},
            "/api/callback-tasks/{id}/call": {"post": {
                "summary": "Agent, preview dialing: your registered phone rings first; when you answer, the task's customer is dialled through the trunk, then bridged to you and recorded", "operationId": "callCallbackTask",
                "parameters": [path_id("callback task id")],
                "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {}})),
                "responses": auth_errors(json!({"202": ok("calling your phone", json!({"type": "object", "properties": {"call_id": {"type": "string"}, "task_id": {"type": "string"}, "attempt": {"type": "integer"}, "agent": {"type": "string"}}})), "404": err("no open callback task"), "409": err("campaign not enabled, task not callable now (being dialled, outside calling hours, past its deadline), or you are not ready with a registered phone"), "503": err("the trunk is full; try again shortly")}))
            }},
            "/api/callback-tasks/{id}/survey": {"post": {
                "summary": "The survey answers the customer gave the agent in a callback; dissatisfied answers open a case for the department", "operationId": "submitCallbackSurvey",
                "parameters": [path_id("callback task id")],
                "requestBody": body(json!({"type": "object", "required": ["call_id"], "additionalProperties": false, "properties": {
                    "call_id": {"type": "string"},
                    "answers": {"type": "object", "description": "question key (attitude, cleaned, fees_ok, satisfaction) → chosen answer's key", "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 9}},
                    "remarks": {"type": "string", "maxLength": 4000}
                }})),
                "responses": auth_errors(json!({"200": ok("recorded", json!({"type": "object", "properties": {"task_id": {"type": "string"}, "call_id": {"type": "string"}, "completed": {"type": "boolean"}, "dissatisfied": {"type": "boolean"}, "case_id": {"type": ["string", "null"]}}})), "400": err("malformed body"), "403": err("another agent's call"), "409": err("not an agent callback of this task, or already settled"), "422": err("an answer that is not a choice of its question")}))
            }},
            "/api/work-orders": {"post": {
                "summary": "Import completed work orders from the ERP (admin); idempotent by order_no; each completed order gets its callback task once", "operationId": "importWorkOrders",
                "requestBody": body(json!({"oneOf": [r("WorkOrderInput"), array(r("WorkOrderInput"))]})),
                "responses": auth_errors(json!({"200": ok("what was imported; bad items are listed, good ones stored", r("ImportSummary")), "400": err("not JSON, or neither an object nor an array")}))
            }},
    })
}

fn paths_live() -> Value {
    let limit = json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100});
    json!({
            "/api/callback-requests": {"get": {
                "summary": "Callbacks promised to callers (supervisor)", "operationId": "listCallbackRequests",
                "parameters": [
                    query("state", "which requests", json!({"type": "string", "enum": ["pending", "done", "cancelled", "all"], "default": "pending"})),
                    query("limit", "at most this many", limit)
                ],
                "responses": auth_errors(json!({"200": ok("requests, soonest due first", array(r("CallbackRequest"))), "400": err("bad parameter")}))
            }},
            "/api/agents": {"get": {
                "summary": "Configured agents with their live state (null fields when the ACD is not running)", "operationId": "listAgents",
                "responses": auth_errors(json!({"200": ok("agents", array(r("Agent")))}))
            }},
            "/api/agents/{id}/state": {"post": {
                "summary": "Set an agent ready, not ready or logged out (the agent themself or a supervisor)", "operationId": "setAgentState",
                "parameters": [path_id("agent id")],
                "requestBody": body(r("AgentStateInput")),
                "responses": auth_errors(json!({
                    "200": ok("the agent's state now", r("AgentStateResult")),
                    "400": err("malformed body"), "404": err("unknown agent"), "409": err("the ACD refused the change in the agent's current state"),
                    "422": err("unknown state"), "503": err("ACD not running")
                }))
            }},
            "/api/queues": {"get": {
                "summary": "Wallboard snapshot: queues and agents", "operationId": "queues",
                "responses": auth_errors(json!({"200": ok("snapshot", r("Snapshot")), "503": err("ACD not running")}))
            }},
            "/api/events": {"get": {
                "summary": "Live events over WebSocket (agent, supervisor). First message {\"type\":\"snapshot\"}, then one Event per message. A client that lags is closed (1013, \"lagged\").",
                "operationId": "events",
                "security": [{"bearer": []}, {"token": []}],
                "parameters": [
                    {"name": "token", "in": "query", "required": false, "description": "the bearer token (browsers cannot set headers on a WebSocket)", "schema": {"type": "string"}}
                ],
                "responses": auth_errors(json!({
                    "101": {"description": "switching to WebSocket; messages are Snapshot then Event"},
                    "400": err("not a WebSocket upgrade")
                }))
            }}
    })
}

fn paths_reports() -> Value {
    let fmt = query(
        "format",
        "json (default) or csv (text/csv attachment, UTF-8 with BOM, header row)",
        json!({"type": "string", "enum": ["json", "csv"], "default": "json"}),
    );
    let bound = json!({"type": "string", "description": "YYYY-MM-DD (local day; `to` includes it), RFC 3339 or epoch ms"});
    let report = |summary: &str, op: &str, params: Value, schema: &str| {
        json!({"get": {
            "summary": summary, "operationId": op, "parameters": params,
            "responses": auth_errors(json!({
                "200": {"description": "the report", "content": {
                    "application/json": {"schema": r(schema)},
                    "text/csv": {"schema": {"type": "string"}}
                }},
                "400": err("bad parameter")
            }))
        }})
    };
    json!({
        "/api/cases": {"post": {
            "summary": "Register a complaint case with its 5-working-day deadline; the caller owns it (agent, supervisor)", "operationId": "createCase",
            "requestBody": body(r("CaseInput")),
            "responses": auth_errors(json!({"201": ok("the case", r("Case")), "400": err("malformed body"), "404": err("unknown customer"), "422": err("invalid values")}))
        }},
        "/api/reports/daily": report(
            "Daily callback report per agent: assigned, completed, attitude, cleanup, fees, remarks (supervisor, admin)", "dailyReport",
            json!([query("date", "YYYY-MM-DD, Asia/Shanghai; default today", json!({"type": "string", "format": "date"})), fmt.clone()]), "DailyReport"),
        "/api/reports/weekly": report(
            "Weekly callback report per agent and region: completed, the five satisfaction levels (supervisor, admin)", "weeklyReport",
            json!([query("week", "ISO week YYYY-Www; default this week", json!({"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"})), fmt.clone()]), "WeeklyReport"),
        "/api/reports/monthly": report(
            "Monthly callback report per region: completion rate, timeliness rate, satisfaction share, worst regions (supervisor, admin)", "monthlyReport",
            json!([query("month", "YYYY-MM; default this month", json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"})), fmt.clone()]), "MonthlyReport"),
        "/api/reports/inbound": report(
            "Inbound KPIs per queue and agent: offered, answered, abandoned, service level, average wait and talk (supervisor, admin)", "inboundReport",
            json!([query("from", "start; default today", bound.clone()), query("to", "end (exclusive unless a date)", bound.clone()),
                   query("sl", "service-level seconds", json!({"type": "integer", "minimum": 1, "maximum": 3600, "default": 20})), fmt.clone()]), "InboundReport"),
        "/api/reports/complaints": report(
            "Complaint cases on time / overdue per department (supervisor, admin)", "complaintsReport",
            json!([query("from", "created from; default the last 366 days", bound.clone()), query("to", "created before", bound), fmt]), "ComplaintsReport"),
    })
}

fn schemas_reports() -> Value {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer", "format": "int64"});
    let n = json!({"type": "number", "nullable": true});
    let oi = json!({"type": "integer", "format": "int64", "nullable": true});
    let five = json!({"type": "array", "items": i, "minItems": 5, "maxItems": 5, "description": "非常满意, 满意, 一般, 不太满意, 很不满意"});
    let line = json!({"type": "object", "properties": {
        "name": s, "offered": i, "answered": i, "abandoned": i, "answered_within_sl": i,
        "service_level": n, "abandon_rate": n, "avg_wait_ms": oi, "avg_talk_ms": oi
    }});
    json!({
        "CaseInput": {"type": "object", "required": ["customer_id", "description"], "additionalProperties": false, "properties": {
            "customer_id": s, "description": {"type": "string", "maxLength": 4000}, "department": s,
            "call_id": {"type": "string", "description": "the call it was raised in"},
            "owner": {"type": "string", "description": "supervisors only; default the caller"}
        }},
        "DailyReport": {"type": "object", "properties": {"date": s, "from": i, "to": i, "agents": array(json!({"type": "object", "properties": {
            "agent": s, "assigned": i, "completed": i, "calls": i, "surveys": i, "attitude_avg": n,
            "cleaned_yes": i, "cleaned_no": i, "fees_ok_yes": i, "fees_ok_no": i, "remarks": array(s.clone())
        }}))}},
        "WeeklyReport": {"type": "object", "properties": {"week": s, "from": i, "to": i, "levels": array(s.clone()), "lines": array(json!({"type": "object", "properties": {
            "agent": s, "region": s, "completed": i, "satisfaction": five
        }}))}},
        "MonthlyReport": {"type": "object", "properties": {"month": s, "from": i, "to": i, "levels": array(s.clone()),
            "worst_regions": array(s.clone()),
            "regions": array(json!({"type": "object", "properties": {
                "region": s, "tasks": i, "completed": i, "timely": i, "completion_rate": n, "timeliness_rate": n,
                "surveys": i, "satisfaction": five, "satisfied_share": n, "worst": {"type": "boolean"}
            }}))}},
        "InboundReport": {"type": "object", "properties": {"from": i, "to": i, "sl_secs": i, "queues": array(line.clone()), "agents": array(line.clone()), "total": line}},
        "ComplaintsReport": {"type": "object", "properties": {"from": i, "to": i, "now": i, "on_time": i, "overdue": i,
            "departments": array(json!({"type": "object", "properties": {
                "department": s, "total": i, "closed_on_time": i, "closed_late": i, "open_on_time": i, "open_overdue": i
            }})),
            "overdue_open": array(json!({"type": "object", "properties": {
                "id": s, "customer_id": s, "department": s, "owner": {"type": "string", "nullable": true}, "state": s,
                "deadline": i, "created_at": i, "closed_at": oi, "description": s
            }}))}}
    })
}

fn schemas() -> Value {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer", "format": "int64"});
    let oi = json!({"type": "integer", "format": "int64", "nullable": true});
    let os = json!({"type": "string", "nullable": true});
    let base = json!({
        "Error": {"type": "object", "required": ["error", "code"], "properties": {
            "error": {"type": "string", "description": "what is wrong"},
            "code": {"type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict", "invalid", "unavailable", "internal"]}
        }},
        "LoginRequest": {"type": "object", "required": ["id", "password"], "properties": {"id": s, "password": s}},
        "LoginResponse": {"type": "object", "properties": {
            "token": {"type": "string", "description": "64 hex digits"}, "role": r("Role"), "id": s, "name": s, "expires_at_ms": i
        }},
        "Role": {"type": "string", "enum": ["agent", "supervisor", "admin"]},
        "Principal": {"type": "object", "properties": {"id": s, "name": s, "role": r("Role"), "expires_at_ms": i}},
        "Customer": {"type": "object", "properties": {
            "id": s, "name": s, "address": s, "region": s, "do_not_call": {"type": "boolean"},
            "phone_status": {"type": "string", "enum": ["unverified", "ok", "empty", "wrong", "mismatch"]},
            "created_at": i, "updated_at": i
        }},
        "CustomerPhone": {"type": "object", "properties": {"phone": {"type": "string", "description": "normalised key"}, "raw": s}},
        "CustomerInput": {"type": "object", "required": ["id", "name"], "additionalProperties": false, "properties": {
            "id": s, "name": s, "address": s, "region": s,
            "phones": {"type": "array", "items": s, "description": "replaces the customer's numbers"},
            "do_not_call": {"type": "boolean"},
            "phone_status": {"type": "string", "enum": ["unverified", "ok", "empty", "wrong", "mismatch"]}
        }},
    });
    let more = json!({
        "WorkOrder": {"type": "object", "properties": {
            "order_no": s, "kind": {"type": "string", "enum": ["install", "repair"]}, "customer_id": s, "product": s,
            "technician": s, "department": s, "region": s, "completed_at": oi, "fees_cents": i, "created_at": i, "updated_at": i
        }},
        "Case": {"type": "object", "properties": {
            "id": s, "customer_id": s, "kind": {"type": "string", "enum": ["complaint", "dissatisfied"]}, "department": s,
            "deadline": i, "state": s, "owner": os, "description": s, "created_at": i, "closed_at": oi
        }},
        "Call": {"type": "object", "properties": {
            "id": s, "direction": {"type": "string", "enum": ["in", "out"]}, "from_number": s, "to_number": s,
            "customer_id": os, "work_order": os, "task_id": os, "queue": os, "agent_id": os,
            "arrived_at": i, "answered_at": oi, "ended_at": oi, "wait_ms": i, "talk_ms": i, "hold_ms": i,
            "ivr_path": {"type": "array", "items": s}, "hangup_cause": s, "hangup_side": s, "disposition": s, "notes": s,
            "recording": os,
            "transfer_chain": {"type": "array", "items": {"type": "object", "properties": {"at": i, "from_agent": s, "to": s, "note": s}}},
            "legs": {"type": "array", "description": "GET /api/calls/{id} only: every phone rung for the call", "items": r("CallLeg")}
        }},
        "CallLeg": leg_schema(),
        "CustomerRecord": {"type": "object", "properties": {
            "customer": r("Customer"), "phones": array(r("CustomerPhone")), "work_orders": array(r("WorkOrder")),
            "calls": array(r("Call")), "open_cases": array(r("Case"))
        }},
        "DispositionInput": {"type": "object", "required": ["disposition"], "additionalProperties": false, "properties": {
            "disposition": {"type": "string", "maxLength": 64}, "notes": {"type": "string", "maxLength": 4000}
        }},
        "WorkOrderInput": {"type": "object", "required": ["order_no", "type", "customer"], "additionalProperties": false, "properties": {
            "order_no": s,
            "type": {"type": "string", "enum": ["install", "repair"]},
            "customer": {"type": "object", "additionalProperties": false,
                "description": "{id} of a known customer, or {phone, name, address, region} (optionally with id) to find or create one",
                "properties": {"id": s, "phone": s, "name": s, "address": s, "region": s}},
            "product": s, "technician": s, "department": s,
            "region": {"type": "string", "description": "default: the customer's region"},
            "completed_at": {"type": "string", "format": "date-time", "nullable": true},
            "fees": {"oneOf": [{"type": "number"}, {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{1,2})?$"}], "description": "yuan"}
        }},
        "ImportSummary": {"type": "object", "properties": {
            "created": i, "updated": i, "failed": i,
            "tasks_created": {"type": "integer", "description": "callback tasks planned for the completed orders"},
            "errors": array(json!({"type": "object", "properties": {"index": i, "order_no": s, "error": s}}))
        }},
        "CallbackRequest": {"type": "object", "properties": {
            "id": s, "phone": s, "customer_id": os, "due_at": i, "source_call": s,
            "state": {"type": "string", "enum": ["pending", "done", "cancelled"]}, "created_at": i, "done_at": oi
        }},
        "Agent": {"type": "object", "properties": {
            "id": s, "name": s, "skills": array(s.clone()),
            "state": {"type": "string", "nullable": true, "enum": ["offline", "ready", "reserved", "on_call", "wrap_up", "not_ready"]},
            "reason": os, "since_ms": oi, "registered": {"type": "boolean", "nullable": true}, "current_call": os,
            "answered_today": oi
        }},
    });
    let live = json!({
        "AgentStateInput": {"type": "object", "required": ["state"], "additionalProperties": false, "properties": {
            "state": {"type": "string", "enum": ["ready", "not_ready", "logout"]},
            "reason": {"type": "string", "description": "why not ready"}
        }},
        "AgentStateResult": {"type": "object", "properties": {"agent": s, "state": s, "reason": os, "since_ms": i}},
        "Snapshot": {"type": "object", "description": "ACD wallboard snapshot", "properties": {
            "now_ms": i,
            "queues": array(json!({"type": "object", "properties": {
                "name": s, "waiting": i, "ringing": i, "longest_wait_ms": i, "estimated_wait_ms": i,
                "agents": {"type": "object", "properties": {"ready": i, "unreachable": i, "reserved": i, "on_call": i, "wrap_up": i, "not_ready": i}},
                "today": {"type": "object", "properties": {"offered": i, "answered": i, "answered_within_sl": i, "abandoned": i, "overflowed": i, "callbacks": i, "refused": i, "wait_total_ms": i, "talk_total_ms": i, "talks": i}},
                "service_level": {"type": "number", "nullable": true}, "abandon_rate": {"type": "number", "nullable": true},
                "avg_wait_ms": oi, "avg_talk_ms": oi
            }})),
            "agents": array(json!({"type": "object", "properties": {
                "id": s, "state": {"type": "object", "description": "{\"state\": \"ready\"} or {\"state\": \"not_ready\", \"reason\": ...}"},
                "since_ms": i, "time_in_state_ms": i, "registered": {"type": "boolean"}, "current_call": os, "answered_today": i
            }}))
        }},
        "Event": {"type": "object", "required": ["type"], "description": "one live event, tagged by type", "properties": {
            "type": {"type": "string", "enum": [
                "snapshot", "call_arrived", "call_queued", "call_offered", "call_answered", "call_abandoned", "call_transferred", "call_consulting", "call_monitored",
                "callback_requested", "call_ended", "call_disposition", "agent_state", "queue_stats"
            ]},
            "call_id": s, "caller": s, "called": s, "queue": s, "priority": i, "agent": s, "cause": s, "state": s,
            "since_ms": i, "waiting": i, "longest_wait_ms": i
        }}
    });
    merge([base, more, live, schemas_reports()])
}

/// Merge objects; a key in several parts (one path with methods described in
/// different parts) has its objects merged one level down.
fn merge<const N: usize>(parts: [Value; N]) -> Value {
    let mut out = serde_json::Map::new();
    for part in parts {
        if let Value::Object(m) = part {
            for (k, v) in m {
                match (out.get_mut(&k), v) {
                    (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
                    (_, v) => {
                        out.insert(k, v);
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// The callback campaign's closed loop (`api::campaign`).
fn paths_campaign() -> Value {
    let s = json!({"type": "string"});
    let i = json!({"type": "integer", "format": "int64"});
    let oi = json!({"type": "integer", "format": "int64", "nullable": true});
    let os = json!({"type": "string", "nullable": true});
    let case = json!({"type": "object", "description": "a case; dissatisfied callback cases carry the order, region, interviewee and source call", "properties": {
        "id": s, "customer_id": s, "kind": {"type": "string", "enum": ["complaint", "dissatisfied"]}, "department": s,
        "deadline": i, "state": {"type": "string", "enum": ["open", "investigating", "resolved", "closed"]},
        "description": s, "created_at": i, "closed_at": oi, "work_order": os, "region": s, "interviewee": s,
        "source_call": os, "fixed_at": oi
    }});
    let counts = json!({"opened": i, "fixed": i, "still_open": i});
    let mut line = counts.clone();
    line["region"] = s.clone();
    let task = json!({"type": "object", "properties": {
        "id": s, "kind": {"type": "string", "enum": ["install", "repair", "second"]},
        "state": {"type": "string", "description": "pending, dialing, done, failed, invalid, expired, cancelled"},
        "attempts": i, "due_at": i, "window_start": i, "window_end": i, "deadline": i,
        "customer": {"type": "object", "properties": {
            "id": s, "name": s, "phone": {"type": "string", "description": "the number dialled (normalised digits); empty when none"},
            "region": {"type": "string", "description": "the order's region, else the customer's"}, "address": s
        }},
        "work_order": {"type": "object", "nullable": true, "properties": {
            "order_no": s, "product": s, "technician": s, "department": s, "completed_at": oi
        }},
        "last_outcome": {"type": "string", "nullable": true, "description": "answered, partial, busy, no_answer, invalid, declined, error, interrupted"},
        "case_id": {"type": "string", "nullable": true, "description": "the dissatisfied case a second callback follows up"}
    }});
    let question = json!({"type": "object", "properties": {
        "key": {"type": "string", "enum": ["attitude", "cleaned", "fees_ok", "satisfaction"]}, "prompt": s,
        "choices": array(json!({"type": "object", "properties": {"key": {"type": "integer", "description": "the key pressed; the answer's value"}, "label": s}}))
    }});
    json!({
        "/api/callback-tasks": {"get": {
            "summary": "Callback tasks (回访任务) for the agent desk, soonest due first, with the campaign mode and the survey questions (agent, supervisor, admin)", "operationId": "listCallbackTasks",
            "parameters": [
                query("state", "open (pending or dialing) or all", json!({"type": "string", "enum": ["open", "all"], "default": "open"})),
                query("limit", "at most this many", json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 100}))
            ],
            "responses": auth_errors(json!({"200": ok("the tasks", json!({"type": "object", "properties": {
                "mode": {"type": "string", "nullable": true, "enum": ["survey", "progressive", "preview"], "description": "[campaign] mode; null when no campaign is configured or enabled"},
                "questions": array(question),
                "tasks": array(task)
            }})), "400": err("bad parameter")}))
        }},
        "/api/cases": {"get": {
            "summary": "Cases, newest first (supervisor, admin)", "operationId": "listCases",
            "parameters": [
                query("state", "open, investigating, resolved, closed or all (default all)", json!({"type": "string"})),
                query("kind", "complaint or dissatisfied", json!({"type": "string", "enum": ["complaint", "dissatisfied"]})),
                query("limit", "at most this many", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))
            ],
            "responses": auth_errors(json!({"200": ok("cases", array(case.clone())), "400": err("bad parameter")}))
        }},
        "/api/cases/{id}/fix": {"post": {
            "summary": "Record the department manager's fix of a dissatisfied callback case and schedule the second callback (supervisor, admin); the case closes when a callback finds the customer satisfied", "operationId": "fixCase",
            "parameters": [path_id("case id")],
            "requestBody": body(json!({"type": "object", "required": ["fix"], "additionalProperties": false, "properties": {"fix": {"type": "string", "maxLength": 4000}}})),
            "responses": auth_errors(json!({
                "200": ok("the case (state resolved), its history and the second callback task", json!({"type": "object", "properties": {
                    "case": case, "events": array(json!({"type": "object", "properties": {"at": i, "actor": s, "text": s}})),
                    "second_task": s, "second_due_at": i
                }})),
                "400": err("malformed body"), "404": err("unknown case"), "409": err("not an open dissatisfied case"), "422": err("empty or too long fix")
            }))
        }},
        "/api/reports/exceptions": {"get": {
            "summary": "Weekly callback exception summary per region: dissatisfied cases opened, fixed and still open (supervisor, admin)", "operationId": "exceptionReport",
            "parameters": [query("week", "ISO week YYYY-Www (default: last week)", json!({"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"}))],
            "responses": auth_errors(json!({"200": ok("the summary", json!({"type": "object", "properties": {
                "week": s, "start_ms": i, "end_ms": i,
                "regions": array(json!({"type": "object", "properties": line})),
                "total": {"type": "object", "properties": counts}
            }})), "400": err("bad week")}))
        }}
    })
}

/// `GET /api/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let routes = super::super::routes();
        for (method, path, _) in &routes {
            let m = method.as_str().to_ascii_lowercase();
            let op = &paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"))[&m];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(
                op["responses"].is_object(),
                "{method} {path} has no responses"
            );
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
        let mut documented = 0;
        for (path, item) in paths {
            for (m, _) in item.as_object().expect("path item") {
                documented += 1;
                assert!(
                    routes
                        .iter()
                        .any(|(rm, rp, _)| rp == path && rm.as_str().eq_ignore_ascii_case(m)),
                    "{m} {path} is documented but not routed"
                );
            }
        }
        assert_eq!(documented, routes.len());
    }

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').expect("end of ref")];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "unresolved $ref {name}"
            );
        }
    }
}
