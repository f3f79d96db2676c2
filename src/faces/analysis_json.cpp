#include "faces/analysis_json.h"

#include "core/error.h"

namespace fairdiff {

Json analysis_to_json(const ImageAnalysis& analysis) {
  Json faces = Json::array();
  for (const Face& face : analysis.faces) {
    Json landmarks = Json::array();
    for (const auto& [x, y] : face.box.landmarks) landmarks.push_back({x, y});
    Json predictions = Json::array();
    for (const AttributePrediction& p : face.attributes.predictions) {
      Json prediction{
          {"attribute", p.attribute}, {"source", p.source}, {"labels", p.labels}, {"probabilities", p.probabilities}};
      if (p.years) prediction["years"] = *p.years;
      predictions.push_back(std::move(prediction));
    }
    faces.push_back({{"box", {face.box.x0, face.box.y0, face.box.x1, face.box.y1}},
                     {"score", face.box.score},
                     {"landmarks", landmarks},
                     {"predictions", predictions}});
  }
  return Json{
      {"width", analysis.width}, {"height", analysis.height}, {"principal", analysis.principal}, {"faces", faces}};
}

ImageAnalysis analysis_from_json(const Json& json, const std::string& source) {
  try {
    ImageAnalysis analysis;
    analysis.width = json.at("width").get<int>();
    analysis.height = json.at("height").get<int>();
    analysis.principal = json.at("principal").get<int>();
    for (const Json& f : json.at("faces")) {
      Face face;
      const Json& box = f.at("box");
      face.box.x0 = box.at(0).get<float>();
      face.box.y0 = box.at(1).get<float>();
      face.box.x1 = box.at(2).get<float>();
      face.box.y1 = box.at(3).get<float>();
      face.box.score = f.at("score").get<float>();
      for (const Json& point : f.at("landmarks"))
        face.box.landmarks.emplace_back(point.at(0).get<float>(), point.at(1).get<float>());
      for (const Json& p : f.at("predictions")) {
        AttributePrediction prediction;
        prediction.attribute = p.at("attribute").get<std::string>();
        prediction.source = p.at("source").get<std::string>();
        prediction.labels = p.at("labels").get<std::vector<std::string>>();
        prediction.probabilities = p.at("probabilities").get<std::vector<float>>();
        if (p.contains("years")) prediction.years = p.at("years").get<float>();
        face.attributes.predictions.push_back(std::move(prediction));
      }
      analysis.faces.push_back(std::move(face));
    }
    if (analysis.principal >= static_cast<int>(analysis.faces.size()))
      throw InputError(source + ": principal face " + std::to_string(analysis.principal) + " of " +
                       std::to_string(analysis.faces.size()));
    return analysis;
  } catch (const Json::exception& e) {
    throw InputError(source + ": stored face analysis is malformed (" + std::string(e.what()) + ")");
  }
}

}  // namespace fairdiff
