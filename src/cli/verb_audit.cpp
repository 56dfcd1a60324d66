// tumorlab audit verify --data-dir DIR
#include <iostream>

#include "tumorlab/app/store_admin.h"
#include "tumorlab/cli/verbs.h"

namespace tumorlab::cli {

Run add_audit(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  app.require_subcommand(1);
  CLI::App* verify = app.add_subcommand("verify", "Check the audit trail's hash chain from the first row");
  verify->add_option("--data-dir", *dir, "Data folder (holds tumorlab.db)")->required();
  verify->footer(
      "Each audit row carries SHA-256(previous row's hash || this row); a changed, removed or inserted row\n"
      "breaks the chain at that row.\n\n"
      "Exit codes: 0 intact, 1 broken (the first broken row is printed), 2 bad input, 3 environment,\n"
      "70 internal error");
  return [dir] {
    const store::AuditVerifyResult r = app::audit_verify(*dir);
    if (r.intact) {
      std::cout << "audit trail intact: " << r.rows_checked << " rows verified\n";
      return 0;
    }
    std::cout << "audit trail BROKEN at row " << *r.first_broken_seq << ": " << r.reason << " (" << r.rows_checked
              << " rows before it verified)\n";
    return 1;
  };
}

}  // namespace tumorlab::cli
