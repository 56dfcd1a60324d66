// De-identification tests on the real DICOM in ../shared/data/dicom. The original identifiers are
// read with DCMTK directly (an independent reader), then searched for in the output bytes.
#include "tumorlab/io/deidentify.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <regex>
#include <set>

#include "test_support.h"
#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"

namespace tumorlab::io {
namespace {

namespace fs = std::filesystem;

const DeidKey& key() {
  static const DeidKey k = DeidKey::from_hex(std::string(64, 'a'));
  return k;
}

fs::path dicom_dir() {
  return testing::shared_data_dir() / "dicom";
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

bool contains(const std::vector<uint8_t>& bytes, const std::string& needle) {
  if (needle.empty()) return false;
  return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end()) != bytes.end();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

// Identifying values of one original file: names, IDs, dates of birth, institution, and every
// instance UID (UI values that are not registered DICOM UIDs), anywhere in the dataset.
std::set<std::string> identifiers(const fs::path& p) {
  DcmFileFormat ff;
  EXPECT_TRUE(ff.loadFile(p.string().c_str()).good()) << p;
  DcmDataset& ds = *ff.getDataset();
  std::set<std::string> out;
  for (const DcmTagKey& key :
       {DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate, DCM_InstitutionName, DCM_InstitutionAddress,
        DCM_ReferringPhysicianName, DCM_AccessionNumber, DCM_RETIRED_OtherPatientIDs}) {
    OFString v;
    if (ds.findAndGetOFStringArray(key, v, true).good()) {
      const std::string t = trim(v.c_str());
      if (t.size() >= 4) out.insert(t);
    }
  }
  DcmStack stack;
  while (ds.nextObject(stack, true).good()) {
    auto* obj = stack.top();
    if (obj->ident() != EVR_UI) continue;
    OFString v;
    static_cast<DcmElement*>(obj)->getOFStringArray(v);
    std::string s = trim(v.c_str());
    std::size_t start = 0;
    while (start <= s.size()) {
      const std::size_t end = std::min(s.find('\\', start), s.size());
      const std::string uid = s.substr(start, end - start);
      if (!uid.empty() && dcmFindNameOfUID(uid.c_str(), nullptr) == nullptr) out.insert(uid);
      start = end + 1;
    }
  }
  return out;
}

std::string tag_value(const fs::path& p, const DcmTagKey& key) {
  DcmFileFormat ff;
  if (ff.loadFile(p.string().c_str()).bad()) return "<unreadable>";
  OFString v;
  if (ff.getDataset()->findAndGetOFStringArray(key, v, true).bad()) return "<absent>";
  return trim(v.c_str());
}

std::vector<fs::path> dicom_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && is_dicom_file(e.path())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

struct DeidRun {
  std::map<fs::path, DeidResult> results;  // by input file
  std::map<fs::path, fs::path> outputs;
};

DeidRun deidentify_folder(const fs::path& in, const fs::path& out) {
  DeidRun run;
  for (const fs::path& f : dicom_files(in)) {
    const fs::path o = out / fs::relative(f, in);
    run.results[f] = deidentify_dicom_file(f, o, key());
    run.outputs[f] = o;
  }
  return run;
}

void expect_no_identifiers(const DeidRun& run) {
  int checked = 0;
  for (const auto& [in, out] : run.outputs) {
    const auto bytes = read_bytes(out);
    for (const std::string& id : identifiers(in)) {
      EXPECT_FALSE(contains(bytes, id)) << out.filename() << " still holds an original identifier";
      ++checked;
    }
    EXPECT_EQ(tag_value(out, DCM_PatientIdentityRemoved), "YES");
    EXPECT_EQ(tag_value(out, DCM_PatientBirthDate), "");
  }
  EXPECT_GT(checked, 0);
}

// Every series of the input is in the output under its remapped UID, with the same instances,
// the same geometry (exactly) and the same voxels.
void expect_same_series(const fs::path& in, const fs::path& out) {
  const auto before = scan_dicom(in);
  const auto after = scan_dicom(out);
  ASSERT_EQ(before.size(), after.size());
  for (const DicomSeriesInfo& b : before) {
    const std::string uid = deidentified_uid(key(), b.series_instance_uid);
    auto it = std::find_if(after.begin(), after.end(),
                           [&](const DicomSeriesInfo& a) { return a.series_instance_uid == uid; });
    ASSERT_NE(it, after.end()) << "series " << b.series_number << " lost its grouping";
    EXPECT_EQ(it->instances, b.instances);
    EXPECT_EQ(it->frames, b.frames);
    EXPECT_EQ(it->study_instance_uid, deidentified_uid(key(), b.study_instance_uid));
    if (!b.readable) continue;
    EXPECT_EQ(it->geometry.size, b.geometry.size);
    EXPECT_EQ(it->geometry.spacing_mm, b.geometry.spacing_mm);
    EXPECT_EQ(it->geometry.origin_lps, b.geometry.origin_lps);
    EXPECT_EQ(it->geometry.direction, b.geometry.direction);
    DicomReadOptions options;
    options.allow_incomplete = true;
    const Volume vb = read_dicom_series(b, options);
    const Volume va = read_dicom_series(*it, options);
    ASSERT_EQ(va.pixel_type(), vb.pixel_type());
    ASSERT_EQ(va.size_bytes(), vb.size_bytes());
    EXPECT_EQ(std::memcmp(va.raw(), vb.raw(), va.size_bytes()), 0) << "voxels changed in series " << b.series_number;
  }
}

TEST(Deidentify, PseudonymAndUid_FormatAndStability) {
  const std::string p = patient_pseudonym(key(), "12345", "HOSP");
  EXPECT_TRUE(std::regex_match(p, std::regex("PAT-[A-Z2-7]{10}"))) << p;
  EXPECT_EQ(p, patient_pseudonym(key(), "12345", "HOSP"));
  EXPECT_NE(p, patient_pseudonym(key(), "12345", "OTHER"));
  EXPECT_NE(p, patient_pseudonym(key(), "123456", "HOSP"));
  EXPECT_NE(p, patient_pseudonym(DeidKey::from_hex(std::string(64, 'b')), "12345", "HOSP"));
  const std::string uid = deidentified_uid(key(), "1.2.3.4");
  EXPECT_TRUE(std::regex_match(uid, std::regex("2\\.25\\.[1-9][0-9]*"))) << uid;
  EXPECT_LE(uid.size(), 64u);
  EXPECT_EQ(uid, deidentified_uid(key(), "1.2.3.4"));
  EXPECT_NE(uid, deidentified_uid(key(), "1.2.3.5"));
  const DeidKey k = DeidKey::generate();
  EXPECT_EQ(DeidKey::from_hex(k.to_hex()).bytes, k.bytes);
  EXPECT_THROW(DeidKey::from_hex("abc"), Error);
  EXPECT_THROW(DeidKey::from_hex(std::string(64, 'g')), Error);
}

TEST(Deidentify, ProfileTable_IsSortedAndHoldsTheKeyAttributes) {
  const auto& rules = basic_profile_rules();
  EXPECT_GT(rules.size(), 600u);
  std::map<std::pair<uint16_t, uint16_t>, DeidAction> by_tag;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (i > 0)
      EXPECT_TRUE(std::make_pair(rules[i - 1].group, rules[i - 1].element) <
                  std::make_pair(rules[i].group, rules[i].element));
    by_tag[{rules[i].group, rules[i].element}] = rules[i].action;
  }
  EXPECT_EQ((by_tag[{0x0010, 0x0010}]), DeidAction::Z);    // Patient's Name
  EXPECT_EQ((by_tag[{0x0010, 0x0020}]), DeidAction::ZD);   // Patient ID
  EXPECT_EQ((by_tag[{0x0010, 0x0030}]), DeidAction::Z);    // Patient's Birth Date
  EXPECT_EQ((by_tag[{0x0008, 0x0080}]), DeidAction::XZD);  // Institution Name
  EXPECT_EQ((by_tag[{0x0020, 0x000D}]), DeidAction::U);    // Study Instance UID
  EXPECT_EQ((by_tag[{0x0008, 0x1155}]), DeidAction::U);    // Referenced SOP Instance UID
  EXPECT_EQ((by_tag[{0x0008, 0x1140}]), DeidAction::XZU);  // Referenced Image Sequence
  EXPECT_EQ(by_tag.count({0x0008, 0x0016}), 0u);           // SOP Class UID is kept
}

TEST(Deidentify, CtWithSeg_NoIdentifiersLeftAndTheSegStillMapsOntoItsSeries) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path in = dicom_dir() / "ct-3slice-liver-seg";
  testing::TempDir tmp;
  const DeidRun run = deidentify_folder(in, tmp.path());
  ASSERT_EQ(run.results.size(), 4u);  // 3 CT slices and the SEG
  std::set<std::string> pseudonyms;
  for (const auto& [f, r] : run.results) pseudonyms.insert(r.pseudonym);
  EXPECT_EQ(pseudonyms.size(), 1u);
  expect_no_identifiers(run);
  expect_same_series(in, tmp.path());

  // The SEG references the de-identified CT series and gives the same label map on it.
  const auto ct_in = scan_dicom(in / "01.dcm").front();
  std::vector<DicomSeriesInfo> ct_out_all = scan_dicom(tmp.path());
  const std::string new_ct_uid = deidentified_uid(key(), ct_in.series_instance_uid);
  const auto ct_out = *std::find_if(ct_out_all.begin(), ct_out_all.end(),
                                    [&](const DicomSeriesInfo& s) { return s.series_instance_uid == new_ct_uid; });
  EXPECT_EQ(dicom_seg_referenced_series(tmp.path() / "liver-seg.dcm"), new_ct_uid);
  const std::vector<DicomSeriesInfo> in_all = scan_dicom(in);
  const auto ct_in_full = *std::find_if(in_all.begin(), in_all.end(), [&](const DicomSeriesInfo& s) {
    return s.series_instance_uid == ct_in.series_instance_uid;
  });
  const LabelMap before = read_dicom_seg(in / "liver-seg.dcm", ct_in_full);
  const LabelMap after = read_dicom_seg(tmp.path() / "liver-seg.dcm", ct_out);
  EXPECT_GT(before.count_nonzero(), 0);
  EXPECT_EQ(before.voxels(), after.voxels());
  EXPECT_TRUE(before.geometry().same_grid(after.geometry(), 0));
}

TEST(Deidentify, MrBrain_NoIdentifiersSameVoxelsDeterministicBytes) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path in = dicom_dir() / "mr-brain-20slice";
  testing::TempDir tmp;
  const DeidRun run = deidentify_folder(in, tmp.path());
  ASSERT_GE(run.results.size(), 20u);
  expect_no_identifiers(run);
  expect_same_series(in, tmp.path());
  const auto& [first_in, first_result] = *run.results.begin();
  EXPECT_EQ(first_result.pseudonym, patient_pseudonym(key(), tag_value(first_in, DCM_PatientID), ""));
  EXPECT_EQ(first_result.pseudonym_source, "PatientID");
  EXPECT_LT(first_result.date_shift_days, 0);
  // Shifted study date: the original date is gone, the interval to the series date is kept.
  const std::string study_date = tag_value(first_in, DCM_StudyDate);
  EXPECT_NE(tag_value(run.outputs.at(first_in), DCM_StudyDate), study_date);
  EXPECT_EQ(tag_value(run.outputs.at(first_in), DCM_PatientName), first_result.pseudonym);
  // Same input and key: the same bytes; the in-memory API agrees with the file API.
  testing::TempDir again;
  const fs::path o2 = again / "x.dcm";
  deidentify_dicom_file(first_in, o2, key());
  EXPECT_EQ(read_bytes(o2), read_bytes(run.outputs.at(first_in)));
  DeidResult r;
  EXPECT_EQ(deidentify_dicom_bytes(read_bytes(first_in), key(), {}, &r), read_bytes(o2));
  EXPECT_EQ(r.pseudonym, first_result.pseudonym);
  EXPECT_EQ(r.sop_instance_uid, first_result.sop_instance_uid);
  // Without the date option, dates follow the basic profile (Study Date emptied).
  DeidOptions plain;
  plain.shift_dates = false;
  deidentify_dicom_file(first_in, again / "plain.dcm", key(), plain);
  EXPECT_EQ(tag_value(again / "plain.dcm", DCM_StudyDate), "");
}

TEST(Deidentify, ProstateStudy_SevenSeriesOnePatientPrivateTagsGone) {
  TUMORLAB_REQUIRE_SHARED_DATA();
  const fs::path in = dicom_dir() / "mr-prostate-study";
  testing::TempDir tmp;
  const DeidRun run = deidentify_folder(in, tmp.path());
  ASSERT_EQ(run.results.size(), 164u);
  std::set<std::string> pseudonyms, studies, series;
  int private_removed = 0;
  for (const auto& [f, r] : run.results) {
    pseudonyms.insert(r.pseudonym);
    studies.insert(r.study_instance_uid);
    series.insert(r.series_instance_uid);
    private_removed += r.private_removed;
  }
  EXPECT_EQ(pseudonyms.size(), 1u);
  EXPECT_EQ(studies.size(), 1u);
  EXPECT_EQ(series.size(), 7u);
  EXPECT_GT(private_removed, 0);
  expect_no_identifiers(run);
  expect_same_series(in, tmp.path());
  // No private group remains.
  for (const auto& [f, out] : run.outputs) {
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(out.string().c_str()).good());
    DcmStack stack;
    int odd = 0;
    while (ff.getDataset()->nextObject(stack, true).good())
      if (stack.top()->getGTag() & 1) ++odd;
    EXPECT_EQ(odd, 0) << out.filename();
  }
}

TEST(Deidentify, Errors_MissingAndNotDicom) {
  testing::TempDir tmp;
  EXPECT_THROW(deidentify_dicom_file(tmp / "missing.dcm", tmp / "out.dcm", key()), Error);
  { std::ofstream(tmp / "text.dcm") << "hello, not DICOM"; }
  try {
    deidentify_dicom_file(tmp / "text.dcm", tmp / "out.dcm", key());
    FAIL() << "expected NotDicom";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotDicom);
  }
  const std::vector<uint8_t> junk(300, 7);
  EXPECT_THROW(deidentify_dicom_bytes(junk, key()), Error);
  EXPECT_FALSE(fs::exists(tmp / "out.dcm"));
}

}  // namespace
}  // namespace tumorlab::io
