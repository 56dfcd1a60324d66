#pragma once
// Each verb registers its options on the CLI11 app and returns the function that runs it.

#include <CLI/CLI.hpp>
#include <functional>

namespace tumorlab::cli {

using Run = std::function<int()>;

Run add_info(CLI::App& app);
Run add_convert(CLI::App& app);
Run add_evaluate(CLI::App& app);
Run add_plan(CLI::App& app);
Run add_train(CLI::App& app);
Run add_predict(CLI::App& app);
Run add_db(CLI::App& app);
Run add_user(CLI::App& app);
Run add_audit(CLI::App& app);
Run add_serve(CLI::App& app);
Run add_demo_data(CLI::App& app);
Run add_import(CLI::App& app);
Run add_export(CLI::App& app);
Run add_ensemble(CLI::App& app);

}  // namespace tumorlab::cli
