//! The charts, each drawn twice (PNG and SVG) with plotters from the per-second rows.
//! Fault events are marked on every time chart as labelled vertical lines.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::Error;
use crate::scrape::NodeSample;
use crate::system::NodeRole;
use crate::workload::Row;

/// DejaVu Sans (Bitstream Vera licence, see `assets/`), embedded so that drawing text needs
/// no font installed on the machine.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The size of every chart, in pixels.
const SIZE: (u32, u32) = (1200, 600);

const NODE_COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A fault as drawn on the charts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaultMark {
    /// Seconds since the workload started.
    pub t_s: f64,
    /// What happened (`kill 2`).
    pub label: String,
    /// For a restart: the node, and the log start index it first reported once back (the
    /// snapshot it resumed from), with when that was seen.
    pub resumed: Option<Resumed>,
}

/// A restarted node's first answer.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Resumed {
    /// The node.
    pub node: u64,
    /// Seconds since the workload started when it first answered.
    pub t_s: f64,
    /// Its log start index then.
    pub log_first_index: u64,
}

/// What the time charts draw.
#[derive(Clone, Copy, Debug)]
pub struct TimeData<'a> {
    /// Per-second rows.
    pub rows: &'a [Row],
    /// The node ids in the order of each row's samples.
    pub node_ids: &'a [u64],
    /// The faults.
    pub faults: &'a [FaultMark],
    /// The system's name (`kv`, `kv-etcd`, `etcd`), for the titles.
    pub system: &'a str,
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A chart that can be drawn on any backend.
trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws `chart` to `<dir>/<stem>.png` and `<dir>/<stem>.svg`.
fn save<C: Chart>(chart: &C, dir: &Path, stem: &str) -> Result<(), Error> {
    register_font();
    let failed = |reason: String| Error::Chart { chart: stem.to_owned(), reason };
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|error| failed(error.to_string()))?;
        chart.draw(&root).map_err(|error| failed(error.to_string()))?;
        root.present().map_err(|error| failed(error.to_string()))?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|error| failed(error.to_string()))?;
        chart.draw(&root).map_err(|error| failed(error.to_string()))?;
        root.present().map_err(|error| failed(error.to_string()))?;
    }
    Ok(())
}

/// The file stems of the five time charts, in the order of the report.
pub const TIME_CHARTS: [(&str, &str); 5] = [
    ("throughput_latency", "Operations per second and latency percentiles"),
    ("persistence_latency", "Persistence (fsync) latency per node, and the disk probe's"),
    ("log_start_index", "Log start index per node"),
    ("roles", "Role of each node"),
    ("snapshot_size", "Snapshot size per node"),
];

/// Draws the five time charts into `dir`.
///
/// # Errors
///
/// [`Error::Chart`] when a backend fails (a file cannot be written).
pub fn draw_time_charts(data: TimeData<'_>, dir: &Path) -> Result<(), Error> {
    save(&Throughput(data), dir, TIME_CHARTS[0].0)?;
    save(&NodeLines { data, kind: NodeLine::Persist }, dir, TIME_CHARTS[1].0)?;
    save(&NodeLines { data, kind: NodeLine::LogStart }, dir, TIME_CHARTS[2].0)?;
    save(&Roles(data), dir, TIME_CHARTS[3].0)?;
    save(&NodeLines { data, kind: NodeLine::Snapshot }, dir, TIME_CHARTS[4].0)?;
    Ok(())
}

fn x_max(rows: &[Row]) -> f64 {
    rows.last().map_or(1.0, |row| row.t_s.ceil()).max(1.0)
}

/// Splits a series at its gaps (`None`), so a down node draws no line.
fn segments(points: impl Iterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut all = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => current.push((x, y)),
            _ => {
                if !current.is_empty() {
                    all.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// Labelled vertical lines at each fault.
fn draw_faults<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    faults: &[FaultMark],
    y_low: f64,
    y_high: f64,
) -> DrawResult<DB> {
    let red = RGBColor(200, 0, 0);
    for (slot, fault) in faults.iter().enumerate() {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(fault.t_s, y_low), (fault.t_s, y_high)],
            red.stroke_width(2),
        )))?;
        // Stagger the labels so that close faults stay readable.
        let label_y = if slot % 2 == 0 { y_high } else { y_low };
        chart.draw_series(std::iter::once(Text::new(
            fault.label.clone(),
            (fault.t_s, label_y),
            ("sans-serif", 14).into_font().color(&red),
        )))?;
    }
    Ok(())
}

/// A dot and a label where a restarted node first answered, at the log start index it
/// resumed from.
fn draw_resumptions<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    faults: &[FaultMark],
    node: u64,
    y_max: f64,
) -> DrawResult<DB> {
    let red = RGBColor(200, 0, 0);
    for resumed in faults.iter().filter_map(|fault| fault.resumed) {
        if resumed.node != node {
            continue;
        }
        let point = (resumed.t_s, resumed.log_first_index as f64);
        chart.draw_series(std::iter::once(Circle::new(point, 6, red.filled())))?;
        let label_y = (point.1 + y_max * 0.25).min(y_max * 0.9);
        chart.draw_series(std::iter::once(Text::new(
            format!("resumed from snapshot: log starts at {}", resumed.log_first_index),
            (resumed.t_s + 0.3, label_y),
            ("sans-serif", 15).into_font().color(&red),
        )))?;
    }
    Ok(())
}

struct Throughput<'a>(TimeData<'a>);

/// A latency line: its name, color and value.
type LatencySeries = (&'static str, RGBColor, fn(&Row) -> f64);

/// A node's line: name suffix, values per second (gaps as `None`), thick.
type NodeSeries = (&'static str, Vec<(f64, Option<f64>)>, bool);

impl Chart for Throughput<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let data = self.0;
        let x_max = x_max(data.rows);
        let (upper, lower) = root.split_vertically(SIZE.1 / 2);
        let ops_max = data.rows.iter().map(|row| row.ops.max(row.errors)).max().unwrap_or(1);
        let ops_max = (ops_max as f64 * 1.15).max(10.0);
        let mut chart = ChartBuilder::on(&upper)
            .caption(
                format!("{}: operations per second (errors in red)", data.system),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..ops_max)?;
        chart.configure_mesh().x_desc("seconds").y_desc("ops/s").draw()?;
        chart
            .draw_series(LineSeries::new(
                data.rows.iter().map(|row| (row.t_s, row.ops as f64)),
                BLUE.stroke_width(2),
            ))?
            .label("ops/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                data.rows.iter().map(|row| (row.t_s, row.errors as f64)),
                RED.stroke_width(1),
            ))?
            .label("errors/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        if let Some(end) = data.rows.iter().filter(|row| row.warmup).map(|row| row.t_s).next_back()
        {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (end, ops_max)],
                RGBAColor(128, 128, 128, 0.15).filled(),
            )))?;
        }
        // Seconds in which the hypervisor took the CPUs: a dip there is the host's.
        let stolen = RGBAColor(255, 140, 0, 0.25);
        let stolen_seconds = data.rows.iter().filter(|row| {
            row.host.is_some_and(|host| host.steal_pct >= crate::seconds::STOLEN_PCT)
        });
        chart
            .draw_series(stolen_seconds.map(|row| {
                Rectangle::new(
                    [((row.t_s - 1.0).max(0.0), 0.0), (row.t_s, ops_max)],
                    stolen.filled(),
                )
            }))?
            .label(format!("host steal >= {}%", crate::seconds::STOLEN_PCT))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], stolen.filled()));
        draw_faults(&mut chart, data.faults, 0.0, ops_max * 0.97)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let latency_max = data
            .rows
            .iter()
            .map(|row| row.latency_ms.max)
            .fold(1.0_f64, f64::max)
            .mul_add(2.0, 0.0);
        let mut chart = ChartBuilder::on(&lower)
            .caption("latency percentiles per second (ms, log scale)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, (0.01f64..latency_max).log_scale())?;
        chart.configure_mesh().x_desc("seconds").y_desc("ms").draw()?;
        let series: [LatencySeries; 4] = [
            ("p50", RGBColor(44, 160, 44), |row| row.latency_ms.p50),
            ("p90", RGBColor(31, 119, 180), |row| row.latency_ms.p90),
            ("p99", RGBColor(255, 127, 14), |row| row.latency_ms.p99),
            ("max", RGBColor(120, 120, 120), |row| row.latency_ms.max),
        ];
        for (name, color, value) in series {
            let points = data.rows.iter().map(|row| {
                let ms = value(row);
                (row.t_s, (row.ops > 0 && ms > 0.0).then_some(ms))
            });
            let mut first = true;
            for segment in segments(points) {
                let drawn = chart.draw_series(LineSeries::new(segment, color.stroke_width(2)))?;
                if first {
                    drawn.label(name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                    first = false;
                }
            }
        }
        draw_faults(&mut chart, data.faults, 0.011, latency_max * 0.9)?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeLine {
    Persist,
    LogStart,
    Snapshot,
}

struct NodeLines<'a> {
    data: TimeData<'a>,
    kind: NodeLine,
}

impl NodeLines<'_> {
    /// The series of node `slot`: (name suffix, values, thick).
    fn series(&self, slot: usize) -> Vec<NodeSeries> {
        let values = |value: fn(&NodeSample) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
            self.data
                .rows
                .iter()
                .map(|row| (row.t_s, row.nodes.get(slot).and_then(value)))
                .collect()
        };
        match self.kind {
            NodeLine::Persist => vec![
                ("p99", values(|node| node.persist_p99_ms), true),
                ("p50", values(|node| node.persist_p50_ms), false),
            ],
            NodeLine::LogStart => {
                vec![("", values(|node| node.log_first_index.map(|index| index as f64)), true)]
            }
            NodeLine::Snapshot => vec![(
                "",
                values(|node| node.snapshot_bytes.map(|bytes| bytes as f64 / 1_048_576.0)),
                true,
            )],
        }
    }
}

impl Chart for NodeLines<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let data = self.data;
        let (title, y_desc) = match self.kind {
            NodeLine::Persist => (
                "fsync latency per second: nodes' p99 thick, p50 thin; disk probe p50 black (ms, log)",
                "ms",
            ),
            NodeLine::LogStart => ("log start (first) index; gaps: node down", "index"),
            NodeLine::Snapshot => ("snapshot size (etcd: backend db size)", "MiB"),
        };
        let all: Vec<_> = (0..data.node_ids.len()).map(|slot| self.series(slot)).collect();
        let y_max = all
            .iter()
            .flatten()
            .flat_map(|(_, values, _)| values.iter().filter_map(|(_, y)| *y))
            .fold(0.0_f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(format!("{}: {title}", data.system), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(80);
        if self.kind == NodeLine::LogStart {
            // One panel per node: a down node's gap and its resumption stay visible even
            // when every node has the same index.
            let panels = root.split_evenly((all.len().max(1), 1));
            let count = all.len();
            for (slot, panel) in panels.iter().enumerate() {
                let id = data.node_ids.get(slot).copied().unwrap_or(0);
                let mut builder = ChartBuilder::on(panel);
                if slot == 0 {
                    builder.caption(format!("{}: {title}", data.system), ("sans-serif", 22));
                }
                let mut chart = builder
                    .margin(8)
                    .x_label_area_size(if slot + 1 == count { 30 } else { 0 })
                    .y_label_area_size(80)
                    .build_cartesian_2d(0f64..x_max(data.rows), 0f64..y_max)?;
                let mut mesh = chart.configure_mesh();
                mesh.y_desc(format!("node {id}")).y_labels(4);
                if slot + 1 == count {
                    mesh.x_desc("seconds");
                }
                mesh.draw()?;
                let only: Vec<Vec<NodeSeries>> = all
                    .iter()
                    .enumerate()
                    .map(|(other, series)| if other == slot { series.clone() } else { Vec::new() })
                    .collect();
                self.draw_lines(&mut chart, only, 0.0, y_max * 0.95)?;
                draw_resumptions(&mut chart, data.faults, id, y_max)?;
            }
            return Ok(());
        }
        if self.kind == NodeLine::Persist {
            // fsync latency spans microseconds to seconds: only a log scale shows both.
            let y_max = y_max.max(1.0) * 2.0;
            let mut chart =
                builder.build_cartesian_2d(0f64..x_max(data.rows), (0.01f64..y_max).log_scale())?;
            chart.configure_mesh().x_desc("seconds").y_desc(y_desc).draw()?;
            self.draw_lines(&mut chart, all, 0.011, y_max * 0.9)
        } else {
            let mut chart = builder.build_cartesian_2d(0f64..x_max(data.rows), 0f64..y_max)?;
            chart.configure_mesh().x_desc("seconds").y_desc(y_desc).draw()?;
            self.draw_lines(&mut chart, all, 0.0, y_max * 0.97)
        }
    }
}

impl NodeLines<'_> {
    fn draw_lines<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
        all: Vec<Vec<NodeSeries>>,
        y_low: f64,
        y_high: f64,
    ) -> DrawResult<DB> {
        let data = self.data;
        let mut any = false;
        for (slot, series) in all.into_iter().enumerate() {
            let color = NODE_COLORS[slot % NODE_COLORS.len()];
            let id = data.node_ids.get(slot).copied().unwrap_or(0);
            // Earlier nodes draw wider, so equal values on several nodes stay visible.
            let wide = 3 + 3 * (data.node_ids.len().saturating_sub(slot + 1)) as u32;
            let width = if self.kind == NodeLine::Snapshot { wide } else { 3 };
            for (suffix, values, thick) in series {
                let style =
                    if thick { color.stroke_width(width) } else { color.mix(0.6).stroke_width(1) };
                let mut first = true;
                let log_scale = self.kind == NodeLine::Persist;
                let values =
                    values.into_iter().map(|(x, y)| (x, y.filter(|y| !log_scale || *y > y_low)));
                for segment in segments(values) {
                    any = true;
                    let drawn = chart.draw_series(LineSeries::new(segment, style))?;
                    if first {
                        let name = format!("node {id} {suffix}");
                        drawn.label(name).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], style)
                        });
                        first = false;
                    }
                }
            }
        }
        if self.kind == NodeLine::Persist {
            // The bare sync the disk probe timed meanwhile: a second in which the nodes'
            // syncs and the probe's slowed together was the disk's.
            let probe = data
                .rows
                .iter()
                .map(|row| (row.t_s, row.disk_sync.map(|sync| sync.p50_ms).filter(|y| *y > y_low)));
            let style = BLACK.stroke_width(2);
            for (index, segment) in segments(probe).into_iter().enumerate() {
                let drawn = chart.draw_series(LineSeries::new(segment, style))?;
                if index == 0 {
                    any = true;
                    drawn
                        .label("disk probe p50")
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
            }
        }
        if !any {
            chart.draw_series(std::iter::once(Text::new(
                "no data: the nodes do not export this metric",
                (x_max(data.rows) * 0.3, y_high * 0.5),
                ("sans-serif", 20),
            )))?;
        }
        draw_faults(chart, data.faults, y_low, y_high)?;
        if any {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// The role colors: follower, pre-candidate, candidate, leader, learner, down.
const ROLE_STYLES: [(&str, RGBColor); 6] = [
    ("follower", RGBColor(158, 202, 225)),
    ("pre-candidate", RGBColor(253, 208, 162)),
    ("candidate", RGBColor(253, 141, 60)),
    ("leader", RGBColor(49, 163, 84)),
    ("learner", RGBColor(188, 189, 220)),
    ("down / no answer", RGBColor(80, 80, 80)),
];

/// The slot in [`ROLE_STYLES`] of a node that did not answer (or named no known role).
const ROLE_STYLE_DOWN: usize = 5;

/// The slot in [`ROLE_STYLES`] of a node that answered with `role`.
fn role_style(role: Option<NodeRole>) -> usize {
    match role {
        Some(NodeRole::Follower) => 0,
        Some(NodeRole::PreCandidate) => 1,
        Some(NodeRole::Candidate) => 2,
        Some(NodeRole::Leader) => 3,
        Some(NodeRole::Learner) => 4,
        None => ROLE_STYLE_DOWN,
    }
}

/// Half the height of a node's role bar, in rows: the rest of the row separates the bars.
const ROLE_BAR_HALF_HEIGHT: f64 = 0.35;

/// The height of the strip under the roles chart that holds its legend, in pixels.
const ROLE_LEGEND_HEIGHT_PIXELS: u32 = 40;

/// One node's row on the roles chart.
#[derive(Clone, Debug, PartialEq)]
struct RoleRow {
    /// `node <id>`, drawn left of the row.
    label: String,
    /// The y of the row's centre, where its bar and its label sit.
    center: f64,
}

/// Where the roles chart draws: one row per node, from the bottom up, and no other row.
#[derive(Clone, Debug, PartialEq)]
struct RoleRows {
    /// The lowest y on the chart: the bottom of the first row.
    y_low: f64,
    /// The highest y on the chart: the top of the last row.
    y_high: f64,
    /// Every node's row, in the order of the node ids.
    rows: Vec<RoleRow>,
}

/// The roles chart's rows for `node_ids`: row `slot` spans `slot..slot + 1`, so the y range
/// holds exactly one row per node (at least one row, so the chart stays drawable).
fn role_rows(node_ids: &[u64]) -> RoleRows {
    let rows: Vec<RoleRow> = node_ids
        .iter()
        .enumerate()
        .map(|(slot, id)| RoleRow { label: format!("node {id}"), center: slot as f64 + 0.5 })
        .collect();
    RoleRows { y_low: 0.0, y_high: rows.len().max(1) as f64, rows }
}

struct Roles<'a>(TimeData<'a>);

impl Chart for Roles<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let data = self.0;
        let layout = role_rows(data.node_ids);
        let height = root.dim_in_pixel().1;
        let (upper, legend) =
            root.split_vertically(height.saturating_sub(ROLE_LEGEND_HEIGHT_PIXELS));
        let mut chart = ChartBuilder::on(&upper)
            .caption(format!("{}: role of each node over time", data.system), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max(data.rows), layout.y_low..layout.y_high)?;
        // The mesh would label "nice" numbers, not the rows' centres: the rows are labelled
        // below, one label each.
        chart.configure_mesh().x_desc("seconds").y_labels(0).disable_y_mesh().draw()?;
        let origin = upper.get_base_pixel();
        let label_style = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        for row in &layout.rows {
            let (x, y) = chart.backend_coord(&(0.0, row.center));
            let at = (x - origin.0 - 8, y - origin.1);
            upper.draw(&Text::new(row.label.clone(), at, label_style.clone()))?;
        }
        let mut start = 0.0;
        for row in data.rows {
            for (node, place) in row.nodes.iter().zip(&layout.rows) {
                let style = if node.up { role_style(node.role) } else { ROLE_STYLE_DOWN };
                let (low, high) =
                    (place.center - ROLE_BAR_HALF_HEIGHT, place.center + ROLE_BAR_HALF_HEIGHT);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(start, low), (row.t_s, high)],
                    ROLE_STYLES[style].1.filled(),
                )))?;
            }
            start = row.t_s;
        }
        draw_faults(&mut chart, data.faults, layout.y_low, layout.y_high)?;
        draw_role_legend(&legend)
    }
}

/// The role colours in one line, in a strip of their own so that no node row gives way.
fn draw_role_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let (width, height) = area.dim_in_pixel();
    let slots = ROLE_STYLES.len() as i32;
    let slot_width = i32::try_from(width).unwrap_or(i32::MAX) / slots;
    let middle = i32::try_from(height / 2).unwrap_or(0);
    let text_style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (slot, (name, color)) in (0..slots).zip(ROLE_STYLES) {
        let left = slot * slot_width + 30;
        area.draw(&Rectangle::new([(left, middle - 6), (left + 18, middle + 6)], color.filled()))?;
        area.draw(&Text::new(name, (left + 26, middle), text_style.clone()))?;
    }
    Ok(())
}

/// The two systems' headline numbers for the comparison chart.
#[derive(Clone, Debug)]
pub struct CompareBars {
    /// The systems' names.
    pub names: [String; 2],
    /// Throughput of each: operations (watch workload: events delivered) per second.
    pub throughput: [f64; 2],
    /// What the throughput counts, for its panel's caption (`ops/s`).
    pub throughput_label: String,
    /// p50, p99 and p99.9 latency of each, in ms.
    pub latency_ms: [[f64; 3]; 2],
    /// What the latency measures, for its panel's caption (`latency (ms)`).
    pub latency_label: String,
    /// What was run, for the title.
    pub title: String,
}

impl Chart for CompareBars {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (left, right) = root.split_horizontally(SIZE.0 / 2);
        let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];
        let ops_max = self.throughput.iter().fold(1.0_f64, |a, b| a.max(*b)) * 1.2;
        let mut chart = ChartBuilder::on(&left)
            .caption(format!("{} {}", self.throughput_label, self.title), ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..2.0, 0f64..ops_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_: &f64| String::new())
            .draw()?;
        for (slot, (value, color)) in self.throughput.iter().zip(colors).enumerate() {
            let (x, value) = (slot as f64, *value);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, value)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{}: {value:.0}", self.names[slot]),
                (x + 0.2, value + ops_max * 0.05),
                ("sans-serif", 18),
            )))?;
        }
        let latency_max = self.latency_ms.iter().flatten().fold(0.1_f64, |a, b| a.max(*b)) * 1.2;
        let labels = ["p50", "p99", "p99.9"];
        let mut chart = ChartBuilder::on(&right)
            .caption(self.latency_label.as_str(), ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..3.0, 0f64..latency_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|_: &f64| String::new())
            .draw()?;
        for (slot, label) in labels.iter().enumerate() {
            chart.draw_series(std::iter::once(Text::new(
                (*label).to_owned(),
                (slot as f64 + 0.4, latency_max * 0.97),
                ("sans-serif", 18),
            )))?;
        }
        for (system, color) in colors.iter().enumerate() {
            for (quantile, value) in self.latency_ms[system].iter().enumerate() {
                let x = quantile as f64 + 0.1 + system as f64 * 0.4;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x, 0.0), (x + 0.38, *value)],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{value:.2}"),
                    (x + 0.02, value + latency_max * 0.02),
                    ("sans-serif", 15),
                )))?;
            }
        }
        for (slot, color) in colors.iter().enumerate() {
            let color = *color;
            chart
                .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (0.0, 0.0)], color)))?
                .label(self.names[slot].clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// Draws the side-by-side comparison to `<dir>/comparison.{png,svg}`.
///
/// # Errors
///
/// [`Error::Chart`] when a backend fails.
pub fn draw_comparison(bars: &CompareBars, dir: &Path) -> Result<(), Error> {
    save(bars, dir, "comparison")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Percentiles;

    fn rows() -> Vec<Row> {
        (1..=20)
            .map(|second| {
                let down = (8..12).contains(&second);
                let node = |slot: u64| NodeSample {
                    up: !(down && slot == 1),
                    role: Some(if slot == 0 { NodeRole::Leader } else { NodeRole::Follower }),
                    term: Some(1),
                    log_first_index: Some(second / 5 * 1000),
                    log_last_index: Some(second * 400),
                    snapshot_index: Some(second / 5 * 1000),
                    snapshot_bytes: Some(second / 5 * 100_000),
                    elections: Some(1),
                    persist_p50_ms: Some(0.5),
                    persist_p99_ms: Some(2.0),
                };
                Row {
                    t_s: second as f64,
                    warmup: second <= 2,
                    ops: 1000 + second * 10,
                    errors: u64::from(down),
                    conflicts: 0,
                    latency_ms: Percentiles { p50: 1.0, p90: 2.0, p99: 5.0, p999: 9.0, max: 20.0 },
                    nodes: (0..3).map(node).collect(),
                    watch: None,
                    // One second the host took the CPUs in.
                    host: Some(crate::cpu::HostShares {
                        busy_pct: 100.0,
                        steal_pct: if second == 7 { 30.0 } else { 0.0 },
                    }),
                    server_cpu_ms: Some(900.0),
                    client_cpu_ms: Some(100.0),
                    // The probe's line, with a gap where a second had no sync.
                    disk_sync: (second != 5).then_some(crate::disk_probe::SyncSecond {
                        syncs: 50,
                        p50_ms: 0.3,
                        max_ms: 2.0,
                    }),
                }
            })
            .collect()
    }

    #[test]
    fn every_time_chart_is_written_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        let faults = [
            FaultMark { t_s: 8.0, label: "kill 2".into(), resumed: None },
            FaultMark {
                t_s: 12.0,
                label: "restart 2".into(),
                resumed: Some(Resumed { node: 2, t_s: 12.2, log_first_index: 1000 }),
            },
        ];
        let data = TimeData { rows: &rows, node_ids: &[1, 2, 3], faults: &faults, system: "kv" };
        draw_time_charts(data, dir.path()).unwrap();
        for (stem, _) in TIME_CHARTS {
            for extension in ["png", "svg"] {
                let path = dir.path().join(format!("{stem}.{extension}"));
                assert!(path.metadata().unwrap().len() > 1000, "{} too small", path.display());
            }
        }
        let svg = std::fs::read_to_string(dir.path().join("roles.svg")).unwrap();
        assert!(svg.contains("restart 2"), "fault labels are drawn");
        let svg = std::fs::read_to_string(dir.path().join("persistence_latency.svg")).unwrap();
        assert!(svg.contains("disk probe p50"), "the probe's line is drawn beside the nodes'");
    }

    #[test]
    fn each_node_has_one_labelled_role_row_and_no_row_is_empty() {
        for node_ids in [vec![1], vec![1, 2, 3], vec![4, 5, 6, 7, 8]] {
            let layout = role_rows(&node_ids);
            let labels: Vec<&str> = layout.rows.iter().map(|row| row.label.as_str()).collect();
            let expected: Vec<String> = node_ids.iter().map(|id| format!("node {id}")).collect();
            assert_eq!(labels, expected, "one label per node, in order");
            for (slot, row) in layout.rows.iter().enumerate() {
                assert_eq!(row.center, layout.y_low + slot as f64 + 0.5, "row {slot} centred");
            }
            let height = layout.y_high - layout.y_low;
            assert_eq!(height, node_ids.len() as f64, "the y range holds the rows and no more");
        }
    }

    #[test]
    fn the_roles_chart_draws_every_node_label_and_the_legend() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        let faults = [FaultMark { t_s: 8.0, label: "kill 2".into(), resumed: None }];
        let data = TimeData { rows: &rows, node_ids: &[1, 2, 3], faults: &faults, system: "kv" };
        save(&Roles(data), dir.path(), "roles").unwrap();
        assert!(dir.path().join("roles.png").metadata().unwrap().len() > 1000);
        let svg = std::fs::read_to_string(dir.path().join("roles.svg")).unwrap();
        for id in [1, 2, 3] {
            // The SVG backend writes each text on a line of its own.
            let label = format!("\nnode {id}\n");
            assert_eq!(svg.matches(&label).count(), 1, "node {id} labelled once");
        }
        for (name, _) in ROLE_STYLES {
            assert!(svg.contains(&format!("\n{name}\n")), "legend names {name}");
        }
    }

    #[test]
    fn the_comparison_chart_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bars = CompareBars {
            names: ["kv-etcd (ours)".into(), "etcd".into()],
            throughput: [12_000.0, 9_000.0],
            throughput_label: "events delivered/s".into(),
            latency_ms: [[3.0, 12.0, 300.0], [6.0, 18.0, 25.0]],
            latency_label: "delivery latency (ms)".into(),
            title: "16 watchers".into(),
        };
        draw_comparison(&bars, dir.path()).unwrap();
        assert!(dir.path().join("comparison.png").is_file());
        let svg = std::fs::read_to_string(dir.path().join("comparison.svg")).unwrap();
        assert!(svg.contains("etcd: 9000"));
        assert!(svg.contains("kv-etcd (ours): 12000"));
        assert!(svg.contains("events delivered/s 16 watchers"), "captions name the measure");
    }
}
