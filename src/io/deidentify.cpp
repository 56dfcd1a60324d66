// DICOM de-identification (PS3.15 Annex E basic profile) with DCMTK; see deidentify.h.
#include "tumorlab/io/deidentify.h"

#include <dcmtk/config/osconfig.h>  // must precede other DCMTK headers
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrda.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>

#include "tumorlab/core/error.h"
#include "tumorlab/io/dicom.h"

namespace fs = std::filesystem;

namespace tumorlab::io {
namespace detail {
std::unique_ptr<DcmFileFormat> load_checked_dicom(const fs::path& path, const std::string& display);
}  // namespace detail

namespace {

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw Error(ErrorCode::Unavailable, "libsodium could not be initialised");
  });
}

std::array<uint8_t, 32> hmac(const DeidKey& key, const std::string& domain, const std::string& message) {
  init_sodium();
  // Domain separation: "<domain>\0<message>".
  std::string input = domain;
  input.push_back('\0');
  input += message;
  std::array<uint8_t, 32> out{};
  crypto_auth_hmacsha256(out.data(), reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                         key.bytes.data());
  return out;
}

// Big-endian bytes -> decimal digits.
std::string to_decimal(std::vector<uint8_t> num) {
  std::string digits;
  while (std::any_of(num.begin(), num.end(), [](uint8_t b) { return b != 0; })) {
    unsigned remainder = 0;
    for (uint8_t& b : num) {
      const unsigned cur = (remainder << 8) | b;
      b = static_cast<uint8_t>(cur / 10);
      remainder = cur % 10;
    }
    digits.push_back(static_cast<char>('0' + remainder));
  }
  if (digits.empty()) digits = "0";
  std::reverse(digits.begin(), digits.end());
  return digits;
}

std::string base32(const uint8_t* bytes, int chars) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  std::size_t pos = 0;
  while (static_cast<int>(out.size()) < chars) {
    if (bits < 5) {
      buffer = (buffer << 8) | bytes[pos++];
      bits += 8;
    }
    out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
    bits -= 5;
  }
  return out;
}

std::string get_string(DcmItem& item, const DcmTagKey& key) {
  OFString value;
  if (item.findAndGetOFStringArray(key, value).good()) return value.c_str();
  return {};
}

struct Rules {
  std::vector<DeidRule> rules;
  Rules() {
#define TL_DEID(g, e, a) rules.push_back(DeidRule{g, e, DeidAction::a});
#include "tumorlab/io/deid_profile.def"
#undef TL_DEID
    std::sort(rules.begin(), rules.end(), [](const DeidRule& x, const DeidRule& y) {
      return x.group != y.group ? x.group < y.group : x.element < y.element;
    });
  }
  const DeidRule* find(uint16_t g, uint16_t e) const {
    auto it = std::lower_bound(rules.begin(), rules.end(), std::make_pair(g, e), [](const DeidRule& r, const auto& k) {
      return r.group != k.first ? r.group < k.first : r.element < k.second;
    });
    if (it != rules.end() && it->group == g && it->element == e) return &*it;
    return nullptr;
  }
};

const Rules& rules() {
  static const Rules r;
  return r;
}

// Days since 1970-01-01 for a proleptic Gregorian date, and back (Howard Hinnant's algorithms).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

// Shifts "YYYYMMDD..." by `days`; "" when the value is not a date.
std::string shift_date(const std::string& value, int days) {
  if (value.size() < 8 || !std::all_of(value.begin(), value.begin() + 8, [](char c) { return c >= '0' && c <= '9'; }))
    return {};
  const int64_t y = std::stoi(value.substr(0, 4));
  const unsigned m = static_cast<unsigned>(std::stoi(value.substr(4, 2)));
  const unsigned d = static_cast<unsigned>(std::stoi(value.substr(6, 2)));
  if (m < 1 || m > 12 || d < 1 || d > 31) return {};
  int64_t ny;
  unsigned nm, nd;
  civil_from_days(days_from_civil(y, m, d) + days, ny, nm, nd);
  if (ny < 1 || ny > 9999) return {};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u", static_cast<int>(ny), nm, nd);
  return std::string(buf) + value.substr(8);
}

std::vector<std::string> split_values(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '\\') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

class Deidentifier {
 public:
  Deidentifier(const DeidKey& key, const DeidOptions& options, DeidResult& result)
      : key_(key), options_(options), result_(result) {}

  void run(DcmDataset& ds) {
    // The patient key, before anything is changed.
    const std::string patient_id = get_string(ds, DCM_PatientID);
    const std::string issuer = get_string(ds, DCM_IssuerOfPatientID);
    std::string source_id = patient_id, source_issuer = issuer;
    result_.pseudonym_source = "PatientID";
    if (patient_id.find_first_not_of(' ') == std::string::npos) {
      const std::string name = get_string(ds, DCM_PatientName), birth = get_string(ds, DCM_PatientBirthDate);
      if (name.find_first_not_of(' ') != std::string::npos) {
        source_id = "name:" + name + "\\birth:" + birth;
        source_issuer.clear();
        result_.pseudonym_source = "PatientName+BirthDate";
      } else {
        source_id = "study:" + get_string(ds, DCM_StudyInstanceUID);
        source_issuer.clear();
        result_.pseudonym_source = "StudyInstanceUID";
      }
    }
    result_.pseudonym = patient_pseudonym(key_, source_id, source_issuer);
    if (options_.shift_dates) {
      const auto h = hmac(key_, "tumorlab-date-shift", source_id + '\0' + source_issuer);
      const uint32_t v = static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 8) |
                         (static_cast<uint32_t>(h[2]) << 16) | (static_cast<uint32_t>(h[3]) << 24);
      shift_days_ = -static_cast<int>(1 + v % 3650);
      result_.date_shift_days = shift_days_;
    }
    result_.modality = get_string(ds, DCM_Modality);

    clean_item(ds, 0);

    // Identity replaced by the pseudonym; the profile's markers.
    put(ds, DCM_PatientName, result_.pseudonym);
    put(ds, DCM_PatientID, result_.pseudonym);
    put(ds, DCM_PatientBirthDate, "");
    put(ds, DCM_PatientIdentityRemoved, "YES");
    put(ds, DCM_DeidentificationMethod,
        options_.shift_dates ? "DICOM PS3.15 E.1 Basic Profile\\Modified Dates Option\\tumorlab"
                             : "DICOM PS3.15 E.1 Basic Profile\\tumorlab");
    delete ds.remove(DCM_DeidentificationMethodCodeSequence);
    add_code(ds, "113100", "Basic Application Confidentiality Profile");
    if (options_.shift_dates) {
      add_code(ds, "113107", "Retain Longitudinal Temporal Information Modified Dates Option");
      put(ds, DCM_LongitudinalTemporalInformationModified, "MODIFIED");
    }
    result_.study_instance_uid = get_string(ds, DCM_StudyInstanceUID);
    result_.series_instance_uid = get_string(ds, DCM_SeriesInstanceUID);
    result_.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  }

 private:
  static void put(DcmItem& item, const DcmTagKey& key, const std::string& value) {
    const OFCondition c = item.putAndInsertString(key, value.c_str());
    if (c.bad())
      throw Error(ErrorCode::Internal,
                  std::string("de-identify: cannot set ") + key.toString().c_str() + ": " + c.text());
  }

  static void add_code(DcmItem& ds, const char* value, const char* meaning) {
    DcmItem* item = nullptr;
    if (ds.findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, item, -2).bad() || item == nullptr)
      throw Error(ErrorCode::Internal, "de-identify: cannot add DeidentificationMethodCodeSequence");
    put(*item, DCM_CodeValue, value);
    put(*item, DCM_CodingSchemeDesignator, "DCM");
    put(*item, DCM_CodeMeaning, meaning);
  }

  static bool is_date_vr(DcmEVR vr) { return vr == EVR_DA || vr == EVR_DT; }
  static bool is_time_vr(DcmEVR vr) { return vr == EVR_TM; }

  std::string remap_uids(const std::string& value) const {
    std::string out;
    bool first = true;
    for (std::string v : split_values(value)) {
      while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.pop_back();
      if (!first) out.push_back('\\');
      first = false;
      if (!v.empty()) out += deidentified_uid(key_, v);
    }
    return out;
  }

  std::string shifted(const std::string& value) const {
    std::string out;
    bool first = true;
    for (const std::string& v : split_values(value)) {
      if (!first) out.push_back('\\');
      first = false;
      out += shift_date(v, shift_days_);
    }
    return out;
  }

  static std::string dummy(DcmEVR vr) {
    switch (vr) {
      case EVR_DA:
        return "19000101";
      case EVR_TM:
        return "000000";
      case EVR_DT:
        return "19000101000000";
      case EVR_AS:
        return "000Y";
      case EVR_IS:
      case EVR_DS:
        return "0";
      case EVR_PN:
      case EVR_LO:
      case EVR_SH:
      case EVR_LT:
      case EVR_ST:
      case EVR_UT:
      case EVR_UC:
      case EVR_CS:
      case EVR_AE:
        return "ANONYMIZED";
      default:
        return "";
    }
  }

  // Z: empty value (an empty sequence).
  void empty(DcmElement& el) {
    if (el.ident() == EVR_SQ) {
      static_cast<DcmSequenceOfItems&>(el).clear();
    } else {
      el.clear();
    }
    ++result_.emptied;
  }

  // D: a dummy of the element's VR; dates shifted when the option is on; sequences cleaned inside.
  void replace(DcmElement& el, int depth) {
    const DcmEVR vr = el.ident();
    if (vr == EVR_SQ) {
      clean_sequence(static_cast<DcmSequenceOfItems&>(el), depth);
      return;
    }
    if (vr == EVR_UI) {
      replace_uid(el);
      return;
    }
    std::string value;
    if (is_date_vr(vr) && options_.shift_dates) {
      OFString original;
      el.getOFStringArray(original);
      value = shifted(original.c_str());
    }
    if (value.empty()) value = dummy(vr);
    if (value.empty()) {
      el.clear();
    } else if (el.putString(value.c_str()).bad()) {
      el.clear();
    }
    ++result_.replaced;
  }

  void replace_uid(DcmElement& el) {
    OFString original;
    el.getOFStringArray(original);
    el.putString(remap_uids(original.c_str()).c_str());
    ++result_.uids_replaced;
  }

  void clean_sequence(DcmSequenceOfItems& seq, int depth) {
    for (unsigned long n = 0; n < seq.card(); ++n)
      if (DcmItem* item = seq.getItem(n)) clean_item(*item, depth + 1);
  }

  void clean_item(DcmItem& item, int depth) {
    if (depth > 64) throw Error(ErrorCode::CorruptFile, "de-identify: sequences nested deeper than 64 levels");
    unsigned long i = 0;
    while (i < item.card()) {
      DcmElement* el = item.getElement(i);
      const DcmTag& tag = el->getTag();
      const uint16_t g = tag.getGroup(), e = tag.getElement();
      const DcmEVR vr = el->ident();
      // Private attributes, curves, overlay data and comments: removed.
      const bool remove_group =
          (g & 1) != 0 || (g >= 0x5000 && g <= 0x50FF) || (g >= 0x6000 && g <= 0x60FF && (e == 0x3000 || e == 0x4000));
      if (remove_group) {
        delete item.remove(i);
        ++((g & 1) ? result_.private_removed : result_.removed);
        continue;
      }
      const DeidRule* rule = rules().find(g, e);
      if (rule == nullptr) {
        if (vr == EVR_SQ) {
          clean_sequence(static_cast<DcmSequenceOfItems&>(*el), depth);
        } else if (vr == EVR_UI) {
          OFString value;
          el->getOFStringArray(value);
          std::string v = value.c_str();
          while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.pop_back();
          bool registered = true;
          for (const std::string& part : split_values(v))
            if (!part.empty() && dcmFindNameOfUID(part.c_str(), nullptr) == nullptr) registered = false;
          if (!registered) replace_uid(*el);
        }
        ++i;
        continue;
      }
      // Dates under the Modified Dates option: shifted wherever the table acts on them
      // (Patient's Birth Date excepted: it is emptied).
      if (options_.shift_dates && is_date_vr(vr) && rule->action != DeidAction::U && !(g == 0x0010 && e == 0x0030)) {
        replace(*el, depth);
        ++i;
        continue;
      }
      if (options_.shift_dates && is_time_vr(vr) && rule->action != DeidAction::X) {
        ++i;  // times are kept when dates are shifted (the option's "C")
        continue;
      }
      switch (rule->action) {
        case DeidAction::X:
          delete item.remove(i);
          ++result_.removed;
          continue;
        case DeidAction::Z:
        case DeidAction::XZ:
        case DeidAction::XZD:
          empty(*el);
          break;
        case DeidAction::ZD:
          if (is_date_vr(vr) || is_time_vr(vr)) {
            replace(*el, depth);
          } else {
            empty(*el);
          }
          break;
        case DeidAction::D:
        case DeidAction::XD:
          replace(*el, depth);
          break;
        case DeidAction::U:
          if (vr == EVR_SQ) {
            clean_sequence(static_cast<DcmSequenceOfItems&>(*el), depth);
          } else {
            replace_uid(*el);
          }
          break;
        case DeidAction::XZU:
          if (vr == EVR_SQ) {
            clean_sequence(static_cast<DcmSequenceOfItems&>(*el), depth);
          } else if (vr == EVR_UI) {
            replace_uid(*el);
          } else {
            empty(*el);
          }
          break;
      }
      ++i;
    }
  }

  const DeidKey& key_;
  const DeidOptions& options_;
  DeidResult& result_;
  int shift_days_ = 0;
};

// A private temporary file path beside `near` (same file system, for an atomic rename).
fs::path temp_path(const fs::path& near, const char* tag) {
  static std::atomic<unsigned> counter{0};
  return near.parent_path() / (".tumorlab-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" +
                               std::to_string(counter++) + ".tmp");
}

DeidResult deidentify_loaded(DcmFileFormat& ff, const fs::path& output, const DeidKey& key, const DeidOptions& options,
                             const std::string& display) {
  DeidResult result;
  DcmDataset& ds = *ff.getDataset();
  E_TransferSyntax xfer = ds.getOriginalXfer();
  if (xfer == EXS_DeflatedLittleEndianExplicit || xfer == EXS_Unknown) xfer = EXS_LittleEndianExplicit;
  // Load every value before anything changes: DCMTK keeps large values on disk, read lazily.
  ds.loadAllDataIntoMemory();
  Deidentifier(key, options, result).run(ds);
  // Rebuild the meta header from the cleaned dataset.
  ff.getMetaInfo()->clear();
  std::error_code ec;
  if (!output.parent_path().empty()) fs::create_directories(output.parent_path(), ec);
  const fs::path tmp = temp_path(output, "deid");
  const OFCondition c =
      ff.saveFile(tmp.string().c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, EWM_fileformat);
  if (c.bad()) {
    fs::remove(tmp, ec);
    throw Error(ErrorCode::IoFailure,
                display + ": cannot write the de-identified file " + output.string() + ": " + c.text());
  }
  fs::rename(tmp, output, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(ErrorCode::IoFailure, "cannot move the de-identified file to " + output.string());
  }
  return result;
}

}  // namespace

DeidKey DeidKey::generate() {
  init_sodium();
  DeidKey k;
  randombytes_buf(k.bytes.data(), k.bytes.size());
  return k;
}

DeidKey DeidKey::from_hex(const std::string& hex) {
  DeidKey k;
  std::size_t bin_len = 0;
  init_sodium();
  if (hex.size() != 64 ||
      sodium_hex2bin(k.bytes.data(), k.bytes.size(), hex.data(), hex.size(), nullptr, &bin_len, nullptr) != 0 ||
      bin_len != 32)
    throw Error(ErrorCode::BadArgument, "de-identification key: expected 64 hexadecimal digits (" +
                                            std::to_string(hex.size()) + " characters given)");
  return k;
}

std::string DeidKey::to_hex() const {
  char buf[65];
  sodium_bin2hex(buf, sizeof buf, bytes.data(), bytes.size());
  return buf;
}

const std::vector<DeidRule>& basic_profile_rules() {
  return rules().rules;
}

std::string patient_pseudonym(const DeidKey& key, const std::string& patient_id, const std::string& issuer) {
  const auto h = hmac(key, "tumorlab-patient", patient_id + '\0' + issuer);
  return "PAT-" + base32(h.data(), 10);
}

std::string deidentified_uid(const DeidKey& key, const std::string& uid) {
  const auto h = hmac(key, "tumorlab-uid", uid);
  return "2.25." + to_decimal(std::vector<uint8_t>(h.begin(), h.begin() + 16));
}

DeidResult deidentify_dicom_file(const fs::path& input, const fs::path& output, const DeidKey& key,
                                 const DeidOptions& options) {
  std::error_code ec;
  if (!fs::exists(input, ec)) throw Error(ErrorCode::FileNotFound, input.string() + ": no such file");
  const std::string display = input.filename().string();
  if (!fs::is_regular_file(input, ec) || !is_dicom_file(input))
    throw Error(ErrorCode::NotDicom, display + ": not a DICOM file");
  auto ff = detail::load_checked_dicom(input, display);
  return deidentify_loaded(*ff, output, key, options, display);
}

std::vector<uint8_t> deidentify_dicom_bytes(const std::vector<uint8_t>& input, const DeidKey& key,
                                            const DeidOptions& options, DeidResult* result) {
  const fs::path dir = fs::temp_directory_path();
  const fs::path in = temp_path(dir / "x", "deid-in");
  const fs::path out = temp_path(dir / "x", "deid-out");
  struct Cleanup {
    fs::path a, b;
    ~Cleanup() {
      std::error_code ec;
      fs::remove(a, ec);
      fs::remove(b, ec);
    }
  } cleanup{in, out};
  {
    std::ofstream f(in, std::ios::binary);
    f.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
    if (!f) throw Error(ErrorCode::IoFailure, "de-identify: cannot write a temporary file in " + dir.string());
  }
  if (!is_dicom_file(in)) throw Error(ErrorCode::NotDicom, "uploaded DICOM: not a DICOM file");
  auto ff = detail::load_checked_dicom(in, "uploaded DICOM");
  const DeidResult r = deidentify_loaded(*ff, out, key, options, "uploaded DICOM");
  if (result) *result = r;
  std::ifstream f(out, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

}  // namespace tumorlab::io
