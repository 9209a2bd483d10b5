// What this server offers beyond the basics, read once from its OpenAPI document, so that
// the app shows the automatch panel, the correspondence time control and the abandonment
// claim only where the server has them (an older server keeps a working app).

import { api } from "./api.js";

let answer = null;

/** The JSON body schema of ``POST path`` ($ref resolved). */
function bodySchema(doc, path) {
  let schema = doc.paths?.[path]?.post?.requestBody?.content?.["application/json"]?.schema;
  if (schema && schema.$ref) schema = doc.components?.schemas?.[schema.$ref.split("/").pop()];
  return schema || null;
}

/** {automatch, correspondence, claimVictory, ratedChallenges}: booleans. */
export function features() {
  if (!answer) {
    answer = api("GET", "/api/openapi.json", undefined, { auth: false }).then((doc) => {
      const text = JSON.stringify(doc);
      return {
        automatch: !!(doc.paths && doc.paths["/api/automatch"]),
        correspondence: text.includes('"days_per_move"'), // the clock, not automatch's speed
        claimVictory: text.includes("claim_victory"),
        ratedChallenges: !!bodySchema(doc, "/api/challenges")?.properties?.rated,
      };
    }).catch(() => {
      answer = null;
      return { automatch: false, correspondence: false, claimVictory: false, ratedChallenges: false };
    });
  }
  return answer;
}
