# Reference P values for tests/test_audit.py: tests of the published summary statistics of
# Cohen et al. 2025 (published_results.csv). Run: Rscript make_reference.R  (writes
# summary_tests.csv). t tests use samples built to have exactly the published means and SDs.
mk <- function(m, s, n) { z <- scale(seq_len(n))[, 1]; m + s * z }
tab <- matrix(c(4, 7, 10, 7), 2)  # rows: cases, controls; columns: positive, not
rows <- list(
  c("leg_4_p", "welch_summary", "two-sided", t.test(mk(2.36, 2.55, 14), mk(2.61, 2.15, 14))$p.value),
  c("leg_4_p", "student_summary", "two-sided", t.test(mk(2.36, 2.55, 14), mk(2.61, 2.15, 14), var.equal = TRUE)$p.value),
  c("back_4_p", "welch_summary", "two-sided", t.test(mk(0.75, 1.73, 14), mk(1.07, 2.01, 14))$p.value),
  c("odi_12_p", "welch_summary", "two-sided", t.test(mk(8.64, 11.36, 14), mk(0, 7.69, 14))$p.value),
  c("odi_12_p", "welch_summary", "greater", t.test(mk(8.64, 11.36, 14), mk(0, 7.69, 14), alternative = "greater")$p.value),
  c("odi_12_p", "student_summary", "two-sided", t.test(mk(8.64, 11.36, 14), mk(0, 7.69, 14), var.equal = TRUE)$p.value),
  c("success_4_p", "fisher_summary", "two-sided", fisher.test(t(tab))$p.value),
  c("success_4_p", "fisher_summary", "less", fisher.test(t(tab), alternative = "less")$p.value),
  c("success_4_p", "fisher_summary", "greater", fisher.test(t(tab), alternative = "greater")$p.value),
  c("success_4_p", "chi2_summary", "two-sided", chisq.test(t(tab), correct = FALSE)$p.value),
  c("success_4_p", "chi2_yates_summary", "two-sided", chisq.test(t(tab), correct = TRUE)$p.value)
)
out <- as.data.frame(do.call(rbind, rows), stringsAsFactors = FALSE)
names(out) <- c("id", "test", "alternative", "p_value")
out$p_value <- format(as.numeric(out$p_value), digits = 15)
write.csv(out, "summary_tests.csv", row.names = FALSE, quote = FALSE)
