#pragma once
// The REST API of tumorlab: every route with its roles, schemas and errors, registered on a
// Router. Handlers parse the request, call one src/app use case and shape the response.

#include <atomic>

#include "tumorlab/app/lab.h"
#include "tumorlab/server/route.h"

namespace tumorlab::server {

// `stopping` ends event streams when the server shuts down.
void register_api_routes(Router& router, app::Lab& lab, const std::atomic<bool>& stopping);

// POST /api/cases/{case_id}/presegment and POST /api/jobs (src/server/api_presegment.cpp).
void register_presegment_routes(Router& router, app::Lab& lab);

// MONAI Label compatible subset: /auth/, /info/, /datastore/, /activelearning/, /infer/, /train/
// (src/server/api_monai.cpp, docs/monai_label.md). `version` is the server's version for /info/.
void register_monai_routes(Router& router, app::Lab& lab, const std::string& version);

// POST /api/uploads, POST /api/exports, GET /api/exports/{export_id} (src/server/api_uploads.cpp).
void register_import_export_routes(Router& router, app::Lab& lab);

// Who is calling, as the app's use cases take it (the logged-in principal and the client address).
app::Actor actor_of(const Request& req);

// The session resolver for HttpServer backed by the lab's sessions.
std::optional<Principal> resolve_session(app::Lab& lab, const std::string& token);

}  // namespace tumorlab::server
