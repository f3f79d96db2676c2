// ImageAnalysis <-> JSON, as the run store keeps each image's faces (box, score, landmarks, every head's
// labels and probabilities), so exports and reports are rebuilt from the store without analysing again.
#pragma once

#include "core/json.h"
#include "faces/face_types.h"

namespace fairdiff {

Json analysis_to_json(const ImageAnalysis& analysis);
// InputError naming `source` when the JSON does not have the layout analysis_to_json writes.
ImageAnalysis analysis_from_json(const Json& json, const std::string& source);

}  // namespace fairdiff
