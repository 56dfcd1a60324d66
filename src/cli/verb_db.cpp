// tumorlab db upgrade --data-dir DIR
#include <iostream>

#include "tumorlab/app/store_admin.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_db(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  app.require_subcommand(1);
  CLI::App* upgrade = app.add_subcommand(
      "upgrade", "Migrate the data folder's database to this tumorlab's schema (a backup copy is kept first)");
  upgrade->add_option("--data-dir", *dir, "Data folder (holds tumorlab.db)")->required();
  upgrade->footer(
      "A server refuses a database with an older schema until this has run. The old database is copied to\n"
      "DIR/backups/tumorlab-schema<N>-<time>.db before migrating.\n\n"
      "Exit codes: 0 success (also when already current), 2 bad input (no database), 3 environment\n"
      "(busy, disk, or a schema newer than this tumorlab), 70 internal error");
  return [dir] {
    const app::DbUpgradeReport r = app::db_upgrade(*dir);
    if (r.upgraded)
      std::cout << "upgraded " << *dir << " from schema " << r.schema_before << " to " << r.schema_after << "\n";
    else
      std::cout << *dir << " is already at schema " << r.schema_after << "\n";
    return 0;
  };
}

}  // namespace tumorlab::cli
