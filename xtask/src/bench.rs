pub fn run(_: &[String]) -> anyhow::Result<()> { anyhow::bail!("no benchmarks yet") }
