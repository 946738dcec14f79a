// processing.progress as a progress bar with words: the stage, items done of total, and the overall share.
import { h } from "../dom.js";
import { t } from "../i18n.js";

export function progressLine(progress) {
  if (!progress) return h("span", { class: "progress-text" }, "…");
  const pct = Math.max(0, Math.min(100, Number(progress.percent ?? 0)));
  const bar = h("progress", { max: 100, value: pct.toFixed(0), "aria-label": `${pct.toFixed(0)}%` });
  const stage = t(`stage.${progress.stage}`);
  const words =
    progress.total != null
      ? t("up.stage", { stage, done: progress.done ?? 0, total: progress.total, unit: progress.unit || "" })
      : stage;
  return h(
    "span",
    { class: "progress" },
    bar,
    h("span", { class: "progress-text" }, `${words} · ${progress.stages_done ?? 0}/${progress.stages_total ?? 6} · ${pct.toFixed(0)}%`),
  );
}
