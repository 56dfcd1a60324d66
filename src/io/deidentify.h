#pragma once
// DICOM de-identification following the Basic Application Level Confidentiality Profile of
// DICOM PS3.15 Annex E (Table E.1-1, edition 2024b), with the Retain Longitudinal Temporal
// Information with Modified Dates Option on by default (dates shifted per patient).
//
// What happens to one file:
// - Every attribute of Table E.1-1 is handled by its action code, wherever it occurs (also inside
//   sequences): X removed; Z emptied; D replaced by a dummy of its VR; U (UIDs) replaced by
//   "2.25.<decimal>" derived from HMAC-SHA256(site key, original UID), so the same original UID
//   always maps to the same new UID: a series stays a series, and references (a SEG's
//   ReferencedSeriesSequence, ReferencedSOPInstanceUID) still point at the right instances.
//   Combined codes take the choice that keeps the IOD valid: X/Z, X/Z/D and Z/D -> Z (dates and
//   times of Z/D -> D), X/D -> D, X/Z/U* -> the sequence is kept and cleaned inside.
// - UIDs not in the table that are not registered DICOM UIDs (SOP classes, transfer syntaxes,
//   coding schemes) are remapped the same way, since instance UIDs often embed dates or serials.
// - Private attributes (odd groups), curves (50xx), overlay data and comments (60xx,3000/4000) are
//   removed; the file meta header is rebuilt from the cleaned dataset.
// - Dates (DA, DT) the table touches are shifted back by 1..3650 days, the same number for
//   every file of a patient (derived from the key and the patient), so intervals are kept;
//   LongitudinalTemporalInformationModified = MODIFIED. Patient's Birth Date is always emptied.
//   With shift_dates off, dates follow the basic profile (emptied or a dummy date).
// - PatientName and PatientID become the pseudonym, PatientIdentityRemoved = YES,
//   DeidentificationMethod and DeidentificationMethodCodeSequence (DCM 113100, 113107) are set.
// Pixel data and geometry attributes are untouched (burned-in text is not detected).
//
// The pseudonym: "PAT-" + 10 base32 characters (RFC 4648) of HMAC-SHA256(site key,
// PatientID + IssuerOfPatientID) (libsodium's crypto_auth_hmacsha256), stable for a patient
// across files, studies and imports with the same key. Without a PatientID, Patient's Name and
// Birth Date are used; without those, the StudyInstanceUID (each study then is its own patient).
// Nothing here logs attribute values.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tumorlab::io {

// The site's secret key (32 bytes). Keep it out of the database and the logs; losing it means
// new imports get new pseudonyms and UIDs.
struct DeidKey {
  std::array<uint8_t, 32> bytes{};
  static DeidKey generate();  // random (libsodium)
  // 64 hex digits; Error(BadArgument) otherwise.
  static DeidKey from_hex(const std::string& hex);
  std::string to_hex() const;
};

struct DeidOptions {
  bool shift_dates = true;  // Retain Longitudinal Temporal Information with Modified Dates Option
};

// What was done to one file. Holds only new (de-identified) values and counts.
struct DeidResult {
  std::string pseudonym;           // "PAT-XXXXXXXXXX"
  std::string pseudonym_source;    // "PatientID", "PatientName+BirthDate" or "StudyInstanceUID"
  std::string study_instance_uid;  // new UIDs
  std::string series_instance_uid;
  std::string sop_instance_uid;
  std::string modality;
  int date_shift_days = 0;  // negative: dates moved back; 0 when shift_dates is off
  int removed = 0;          // attributes removed by the table (X)
  int emptied = 0;          // Z
  int replaced = 0;         // D (dummy values and shifted dates)
  int uids_replaced = 0;    // U, and unregistered UIDs outside the table
  int private_removed = 0;  // private attributes and their creators
};

enum class DeidAction : uint8_t { D, Z, X, U, ZD, XZ, XD, XZD, XZU };
struct DeidRule {
  uint16_t group = 0, element = 0;
  DeidAction action = DeidAction::X;
};
// Table E.1-1 (basic profile column) as used here, sorted by tag. Repeating groups (50xx,
// 60xx) are not in this list; they are handled by code.
const std::vector<DeidRule>& basic_profile_rules();

std::string patient_pseudonym(const DeidKey& key, const std::string& patient_id, const std::string& issuer);
// The replacement of one UID: "2.25." + the first 128 bits of HMAC-SHA256(key, uid) in decimal.
std::string deidentified_uid(const DeidKey& key, const std::string& uid);

// De-identifies one DICOM file into `output` (written atomically; folders created).
// Errors: FileNotFound, NotDicom, CorruptFile (the checks of scan_dicom's loader), IoFailure.
DeidResult deidentify_dicom_file(const std::filesystem::path& input, const std::filesystem::path& output,
                                 const DeidKey& key, const DeidOptions& options = {});
// The same on bytes in memory (a Part 10 file); returns the de-identified file's bytes.
std::vector<uint8_t> deidentify_dicom_bytes(const std::vector<uint8_t>& input, const DeidKey& key,
                                            const DeidOptions& options = {}, DeidResult* result = nullptr);

}  // namespace tumorlab::io
