#pragma once
// Reading fields of JSON request bodies with errors that name the field (Error(BadArgument)).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace tumorlab::app {

std::string json_string(const nlohmann::json& body, const std::string& key);  // required
std::optional<std::string> json_opt_string(const nlohmann::json& body, const std::string& key);
bool json_bool(const nlohmann::json& body, const std::string& key);
std::optional<bool> json_opt_bool(const nlohmann::json& body, const std::string& key);
std::int64_t json_int(const nlohmann::json& body, const std::string& key);
std::optional<std::int64_t> json_opt_int(const nlohmann::json& body, const std::string& key);  // null -> nullopt
double json_double(const nlohmann::json& body, const std::string& key);
std::optional<double> json_opt_double(const nlohmann::json& body, const std::string& key);
// An integer within [lo, hi], naming the field otherwise.
std::int64_t json_int_in(const nlohmann::json& body, const std::string& key, std::int64_t lo, std::int64_t hi,
                         std::optional<std::int64_t> fallback = std::nullopt);

// A JSON object kept as text in the store (job params and results, model metadata, audit
// details); {} when the text is empty, not JSON or not an object (never throws).
nlohmann::json stored_object(const std::string& text);

// Standard base64 (RFC 4648, padding optional). Error(BadArgument) naming `field` on bad input.
std::string base64_decode(const std::string& text, const std::string& field);
std::string base64_encode(const std::string& bytes);

}  // namespace tumorlab::app
