"""A realistic Chinese demo data set: departments, staff, categories, products and members.

Every demo staff user logs in with the password `deer-demo-2026` (`DEMO_PASSWORD`); their
usernames start with `demo_` (`demo_admin` is the admin). The data is drawn from fixed seeds,
so every run produces the same rows: seeding is idempotent, and concurrent seeds take turns
through a PostgreSQL advisory lock held by each group's transaction (the unique keys, one name
per parent included, would refuse duplicates anyway; taking turns avoids failing on them).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, TypeVar

from tortoise.transactions import in_transaction
from tqdm import tqdm

from deer.accounts.models import Department, Member, MemberCondition, Role, User, UserStatus
from deer.accounts.passwords import hash_password
from deer.accounts.service import ensure_builtin_roles
from deer.catalog.models import Category, Product, ProductStatus

DEMO_PASSWORD: Final = "deer-demo-2026"
SEED_LOCK: Final = 0x6465_6D6F  # "demo": one seeding group at a time across processes
PRODUCT_SEED: Final = 2026_0101
MEMBER_SEED: Final = 2026_0102
PRODUCTS_PER_LEAF: Final = 5
MEMBER_COUNT: Final = 200
FORMAL_SHARE: Final = 0.65
# Level n is reached at LEVEL_THRESHOLDS[n] fen of cumulative spend: 普通, 银卡, 金卡, 钻石.
LEVEL_THRESHOLDS: Final = (0, 100_000, 500_000, 2_000_000)
FEN_PER_POINT: Final = 100  # one point per yuan paid
MEMBER_SPEND_FEN: Final = (2_990, 3_000_000)  # formal members, drawn log-uniformly
CHANNEL_CHOICES: Final = ((("mini_program", "web"), 6), (("mini_program",), 3), (("web",), 1))
STATUS_CHOICES: Final = (
    (ProductStatus.ONLINE, 85),
    (ProductStatus.DRAFT, 8),
    (ProductStatus.OFFLINE, 7),
)
SOLD_OUT_SHARE: Final = 0.06
MAX_STOCK: Final = 500
MEAN_SALES: Final = 600
MAX_SALES: Final = 20_000
MAX_IMAGES: Final = 3
VARIANT_STEP: Final = 0.12
PRICE_SPREAD: Final = (0.95, 1.05)  # promotions and rounding around the list price
MOBILE_PREFIXES: Final = (
    *(f"13{d}" for d in range(10)),
    *("150", "151", "152", "153", "155", "156", "157", "158", "159"),
    *(f"18{d}" for d in range(10)),
)
EMAIL_DOMAIN: Final = "deer-demo.example"


class TreeNode(NamedTuple):
    name: str
    parent: str | None
    sort: int


class StaffSpec(NamedTuple):
    username: str
    name: str
    mobile: str
    department: str
    roles: tuple[str, ...]


class LeafSpec(NamedTuple):
    """A leaf category and the word lists its demo products are drawn from."""

    name: str
    items: tuple[tuple[str, str, int], ...]  # (brand, model and product type, list price in yuan)
    variants: tuple[str, ...]  # cheapest first: each one costs VARIANT_STEP more than the last


class TopSpec(NamedTuple):
    name: str
    cost_ratio: tuple[float, float]
    blurbs: tuple[str, ...]
    leaves: tuple[LeafSpec, ...]


DEPARTMENTS: Final = (
    TreeNode("总经办", None, 10),
    TreeNode("销售部", "总经办", 10),
    TreeNode("华东销售组", "销售部", 10),
    TreeNode("华南销售组", "销售部", 20),
    TreeNode("运营部", "总经办", 20),
    TreeNode("客服部", "总经办", 30),
)
DEPARTMENT_MANAGERS: Final = {
    "总经办": "demo_admin",
    "销售部": "demo_wangfang",
    "华东销售组": "demo_liqiang",
    "华南销售组": "demo_chenjing",
    "运营部": "demo_lina",
    "客服部": "demo_huangli",
}
STAFF: Final = (
    StaffSpec("demo_admin", "张伟", "13911380526", "总经办", ("admin",)),
    StaffSpec("demo_wangfang", "王芳", "13761925803", "销售部", ("sales_manager",)),
    StaffSpec("demo_liqiang", "李强", "15021678934", "华东销售组", ("sales_manager", "sales")),
    StaffSpec("demo_chenjing", "陈静", "18620357741", "华南销售组", ("sales_manager", "sales")),
    StaffSpec("demo_liuyang", "刘洋", "13601847265", "华东销售组", ("sales",)),
    StaffSpec("demo_zhaomin", "赵敏", "15800963412", "华东销售组", ("sales",)),
    StaffSpec("demo_sunhao", "孙浩", "18917652038", "华东销售组", ("sales",)),
    StaffSpec("demo_zhoujie", "周杰", "13826749150", "华南销售组", ("sales",)),
    StaffSpec("demo_wuting", "吴婷", "15915830627", "华南销售组", ("sales",)),
    StaffSpec("demo_xulei", "徐磊", "18588206419", "华南销售组", ("sales",)),
    StaffSpec("demo_lina", "李娜", "13916547802", "运营部", ("ops",)),
    StaffSpec("demo_maxiaoyu", "马晓宇", "15618390274", "运营部", ("ops",)),
    StaffSpec("demo_huangli", "黄丽", "18121094563", "客服部", ("ops",)),
)

CATALOG: Final = (
    TopSpec(
        "数码家电",
        (0.70, 0.88),
        ("正品行货，全国联保，支持七天无理由退货。", "官方授权，顺丰包邮，以旧换新更省心。"),
        (
            LeafSpec(
                "手机",
                (
                    ("华为", "Mate 60 Pro 手机", 5999),
                    ("华为", "nova 12 手机", 2699),
                    ("小米", "14 Ultra 手机", 5999),
                    ("小米", "Redmi K70 手机", 2499),
                    ("OPPO", "Find X7 手机", 3999),
                    ("vivo", "X100 手机", 3999),
                    ("荣耀", "Magic6 手机", 4399),
                ),
                ("12GB+256GB 曜石黑", "12GB+512GB 雪域白", "16GB+512GB 远山蓝"),
            ),
            LeafSpec(
                "耳机音箱",
                (
                    ("华为", "FreeBuds Pro 3 蓝牙耳机", 1299),
                    ("小米", "Buds 4 Pro 蓝牙耳机", 899),
                    ("漫步者", "W820NB 头戴式耳机", 299),
                    ("索尼", "WH-1000XM5 头戴式耳机", 2499),
                    ("JBL", "Flip 6 蓝牙音箱", 799),
                ),
                ("标准版", "星河银", "陶瓷白", "降噪版"),
            ),
            LeafSpec(
                "智能穿戴",
                (
                    ("华为", "WATCH 4 智能手表", 2699),
                    ("小米", "手环 8 Pro", 399),
                    ("Amazfit", "GTR 4 智能手表", 999),
                    ("苹果", "Watch Series 9", 2999),
                ),
                ("42mm 白色", "46mm 黑色氟橡胶表带", "NFC 版"),
            ),
            LeafSpec(
                "厨房电器",
                (
                    ("美的", "IH 电饭煲 4L", 399),
                    ("九阳", "破壁料理机 Y1", 1299),
                    ("苏泊尔", "电压力锅 5L", 299),
                    ("小熊", "空气炸锅 4L", 199),
                    ("格兰仕", "变频微波炉", 599),
                ),
                ("家用款", "米白色", "升级款"),
            ),
            LeafSpec(
                "生活电器",
                (
                    ("戴森", "V12 无绳吸尘器", 3999),
                    ("米家", "扫拖机器人 X10", 2799),
                    ("飞科", "电动剃须刀 FS903", 199),
                    ("松下", "高速吹风机", 899),
                    ("美的", "落地电风扇", 239),
                ),
                ("标准版", "礼盒装", "旗舰版"),
            ),
        ),
    ),
    TopSpec(
        "服饰鞋包",
        (0.35, 0.60),
        ("面料柔软亲肤，版型修身显瘦。", "当季新款，支持运费险，不满意包退换。"),
        (
            LeafSpec(
                "男装",
                (
                    ("海澜之家", "纯棉短袖T恤", 79),
                    ("森马", "休闲夹克", 299),
                    ("七匹狼", "商务长袖衬衫", 259),
                    ("优衣库", "摇粒绒外套", 199),
                    ("太平鸟", "直筒牛仔裤", 399),
                ),
                ("黑色 L", "白色 XL", "藏青 M", "灰色 XXL"),
            ),
            LeafSpec(
                "女装",
                (
                    ("伊芙丽", "法式碎花连衣裙", 499),
                    ("ONLY", "针织开衫", 399),
                    ("太平鸟", "中长款风衣", 899),
                    ("拉夏贝尔", "高腰半身裙", 199),
                    ("欧时力", "轻薄羽绒服", 1099),
                ),
                ("米白 S", "黑色 M", "燕麦色 L"),
            ),
            LeafSpec(
                "运动鞋",
                (
                    ("李宁", "韦德之道 篮球鞋", 1099),
                    ("安踏", "C202 跑步鞋", 499),
                    ("特步", "160X 竞速跑鞋", 899),
                    ("耐克", "Air Force 1 板鞋", 799),
                    ("361度", "飞燃 跑鞋", 599),
                ),
                ("41码 白色", "42码 黑白", "43码 荧光绿"),
            ),
            LeafSpec(
                "箱包",
                (
                    ("新秀丽", "20寸 登机拉杆箱", 1999),
                    ("小米", "通勤双肩包", 149),
                    ("外交官", "24寸 行李箱", 699),
                    ("蔻驰", "托特包", 2599),
                ),
                ("黑色", "雾霾蓝", "玫瑰金"),
            ),
        ),
    ),
    TopSpec(
        "食品生鲜",
        (0.55, 0.80),
        ("产地直发，新鲜到家，坏果包赔。", "精选好料，口感醇正，全家都爱吃。"),
        (
            LeafSpec(
                "休闲零食",
                (
                    ("三只松鼠", "每日坚果 750g", 99),
                    ("良品铺子", "猪肉脯 200g", 39),
                    ("百草味", "芒果干 120g", 19),
                    ("卫龙", "大面筋辣条", 15),
                    ("旺旺", "仙贝 520g", 35),
                ),
                ("单袋装", "家庭装", "礼盒装"),
            ),
            LeafSpec(
                "粮油调味",
                (
                    ("金龙鱼", "食用调和油 5L", 69),
                    ("福临门", "东北大米 10kg", 79),
                    ("海天", "金标生抽 1.9L", 25),
                    ("李锦记", "旧庄蚝油", 19),
                    ("太太乐", "鸡精 454g", 22),
                ),
                ("单瓶装", "组合装", "整箱装"),
            ),
            LeafSpec(
                "茶饮冲调",
                (
                    ("狮峰", "明前西湖龙井 250g", 688),
                    ("立顿", "黄牌精选红茶 100包", 49),
                    ("雀巢", "1+2 原味咖啡 30条", 45),
                    ("八马", "安溪铁观音 浓香型", 298),
                    ("蒙牛", "纯牛奶 250ml×24盒", 65),
                ),
                ("尝鲜装", "家庭装", "礼盒装"),
            ),
            LeafSpec(
                "生鲜水果",
                (
                    ("佳沃", "智利车厘子 2kg", 299),
                    ("褚橙", "冰糖橙 5kg", 128),
                    ("都乐", "菲律宾香蕉", 39),
                    ("云南", "阳光玫瑰葡萄", 69),
                    ("洛川", "红富士苹果", 59),
                ),
                ("精选装", "一级果", "特级果"),
            ),
        ),
    ),
    TopSpec(
        "美妆个护",
        (0.30, 0.55),
        ("温和不刺激，敏感肌也能放心用。", "品牌直供，假一赔十，赠品随单发。"),
        (
            LeafSpec(
                "面部护肤",
                (
                    ("百雀羚", "水乳套装", 299),
                    ("珀莱雅", "双抗精华 30ml", 339),
                    ("自然堂", "冰肌水", 169),
                    ("薇诺娜", "舒敏保湿特护霜", 268),
                    ("欧莱雅", "复颜玻尿酸面霜", 329),
                ),
                ("旅行装", "正装", "礼盒装"),
            ),
            LeafSpec(
                "彩妆",
                (
                    ("完美日记", "丝绒口红", 79),
                    ("花西子", "空气蜜粉", 169),
                    ("卡姿兰", "大眼睛睫毛膏", 99),
                    ("毛戈平", "光感粉底液", 380),
                    ("橘朵", "九色眼影盘", 69),
                ),
                ("#01 正红", "#03 豆沙", "#05 奶茶"),
            ),
            LeafSpec(
                "洗发沐浴",
                (
                    ("海飞丝", "去屑洗发露 750ml", 69),
                    ("清扬", "男士控油洗发水", 59),
                    ("舒肤佳", "沐浴露 1L", 45),
                    ("六神", "花露水沐浴露", 29),
                    ("多芬", "密集滋养护发素", 49),
                ),
                ("单瓶装", "两瓶装", "家庭装"),
            ),
            LeafSpec(
                "口腔护理",
                (
                    ("云南白药", "牙膏 180g", 35),
                    ("舒客", "声波电动牙刷", 199),
                    ("飞利浦", "电动牙刷 HX6730", 399),
                    ("高露洁", "劲白牙膏", 19),
                    ("欧乐B", "iO3 电动牙刷", 899),
                ),
                ("标准装", "三支装", "替换刷头套装"),
            ),
        ),
    ),
    TopSpec(
        "家居日用",
        (0.40, 0.65),
        ("居家必备，结实耐用，好评如潮。", "简约设计，百搭好看，提升生活品质。"),
        (
            LeafSpec(
                "床上用品",
                (
                    ("罗莱", "全棉四件套", 699),
                    ("水星家纺", "桑蚕丝被", 1299),
                    ("富安娜", "乳胶枕", 299),
                    ("梦洁", "夏凉被", 399),
                    ("博洋", "珊瑚绒毯", 159),
                ),
                ("1.5m床", "1.8m床", "200×230cm"),
            ),
            LeafSpec(
                "收纳整理",
                (
                    ("天马", "透明收纳箱", 89),
                    ("禧天龙", "五层抽屉柜", 259),
                    ("太力", "真空压缩袋", 49),
                    ("茶花", "桌面收纳盒", 29),
                    ("百露", "防滑衣架", 39),
                ),
                ("中号", "大号", "三件套"),
            ),
            LeafSpec(
                "厨房用具",
                (
                    ("双立人", "刀具套装", 899),
                    ("苏泊尔", "不粘炒锅 32cm", 259),
                    ("炊大皇", "铸铁炖锅", 399),
                    ("乐扣乐扣", "玻璃保鲜盒", 99),
                    ("膳魔师", "保温杯 500ml", 229),
                ),
                ("标准款", "珊瑚红", "礼盒款"),
            ),
            LeafSpec(
                "清洁用品",
                (
                    ("蓝月亮", "深层洁净洗衣液 3kg", 59),
                    ("立白", "洗洁精 1.5kg", 19),
                    ("维达", "抽纸 24包", 49),
                    ("心相印", "湿巾 80抽", 15),
                    ("威猛先生", "厨房重油污清洁剂", 29),
                ),
                ("单件装", "整箱装", "囤货装"),
            ),
        ),
    ),
    TopSpec(
        "办公用品",
        (0.45, 0.70),
        ("企业采购优选，支持开具增值税发票。", "品质稳定，批量采购更优惠。"),
        (
            LeafSpec(
                "文具",
                (
                    ("晨光", "中性笔 0.5mm 12支", 15),
                    ("得力", "重型订书机", 39),
                    ("齐心", "A4 文件夹", 12),
                    ("国誉", "B5 活页本", 29),
                    ("百乐", "按动中性笔", 9),
                ),
                ("黑色", "蓝色", "混色"),
            ),
            LeafSpec(
                "打印耗材",
                (
                    ("惠普", "HP 88A 硒鼓", 399),
                    ("得力", "A4 复印纸 70g 5包", 129),
                    ("兄弟", "TN-2425 粉盒", 299),
                    ("佳能", "PG-845 墨盒", 99),
                    ("爱普生", "T6721 墨水", 49),
                ),
                ("标准容量", "双支装", "大容量"),
            ),
            LeafSpec(
                "办公设备",
                (
                    ("得力", "静音碎纸机", 399),
                    ("惠普", "M30w 激光打印机", 899),
                    ("爱普生", "L3258 墨仓打印机", 1099),
                    ("科密", "智能点钞机", 599),
                    ("西昊", "M57 人体工学椅", 699),
                ),
                ("标准版", "无线版", "商务版"),
            ),
        ),
    ),
)

SURNAMES: Final = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
    "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
    "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋", "蔡", "余", "欧阳", "司马",
)  # fmt: skip
GIVEN_NAMES: Final = (
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "婷婷", "子涵", "浩然", "欣怡", "宇轩",
    "梓萱", "一诺", "思远", "雨桐", "俊杰", "佳怡", "晨曦", "建国", "志强", "海燕", "文博", "嘉怡",
)  # fmt: skip

STEPS: Final = ("roles", "departments", "staff", "categories", "products", "members")

TreeModel = TypeVar("TreeModel", Department, Category)
T = TypeVar("T")


async def seed_demo(progress: bool = True) -> dict[str, int]:
    """Load the demo data set (missing rows only) and count what is there afterwards."""
    with tqdm(total=len(STEPS), desc="demo data", unit="step", disable=not progress) as bar:

        async def run(step: str, work: Awaitable[T]) -> T:
            bar.set_postfix_str(step)
            done = await work
            bar.update()
            return done

        roles = await run("roles", ensure_builtin_roles())
        department_ids = await run("departments", seed_departments())
        await run("staff", seed_staff(department_ids, roles))
        category_ids = await run("categories", seed_categories())
        await run("products", seed_products(category_ids))
        await run("members", seed_members())
    return await count_rows()


async def count_rows() -> dict[str, int]:
    return {
        "departments": await Department.all().count(),
        "staff": await User.all().count(),
        "categories": await Category.all().count(),
        "products": await Product.all().count(),
        "members": await Member.all().count(),
    }


@asynccontextmanager
async def seeding_transaction() -> AsyncIterator[None]:
    """A transaction holding the demo lock: concurrent seeds take turns, group by group."""
    async with in_transaction() as connection:
        await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [SEED_LOCK])
        yield


async def ensure_tree(model: type[TreeModel], nodes: Sequence[TreeNode]) -> dict[str, int]:
    """Ids by name of the nodes (parents listed first), creating those missing."""
    ids: dict[str, int] = {}
    for node in nodes:
        parent_id = ids[node.parent] if node.parent is not None else None
        found = await model.filter(name=node.name, parent_id=parent_id).order_by("id").first()
        if found is None:
            found = await model.create(name=node.name, parent_id=parent_id, sort=node.sort)
        ids[node.name] = found.id
    return ids


async def seed_departments() -> dict[str, int]:
    async with seeding_transaction():
        return await ensure_tree(Department, DEPARTMENTS)


async def seed_staff(department_ids: Mapping[str, int], roles: Mapping[str, Role]) -> None:
    """Create the missing staff, give every one their roles, fill empty department managers."""
    usernames = [spec.username for spec in STAFF]
    present = {user.username for user in await User.filter(username__in=usernames)}
    missing = [spec for spec in STAFF if spec.username not in present]
    # argon2 is slow on purpose: hash once, off the event loop, and only when needed
    password_hash = await asyncio.to_thread(hash_password, DEMO_PASSWORD) if missing else ""
    async with seeding_transaction():
        await User.bulk_create(
            [staff_user(spec, department_ids, password_hash) for spec in missing],
            ignore_conflicts=True,
        )
        users = {user.username: user for user in await User.filter(username__in=usernames)}
        for spec in STAFF:
            if (user := users.get(spec.username)) is not None:
                await user.roles.add(*(roles[code] for code in spec.roles))
        for department, username in DEPARTMENT_MANAGERS.items():
            if (manager := users.get(username)) is not None:
                await Department.filter(
                    id=department_ids[department], manager_id__isnull=True
                ).update(manager_id=manager.id)


def staff_user(spec: StaffSpec, department_ids: Mapping[str, int], password_hash: str) -> User:
    return User(
        username=spec.username,
        name=spec.name,
        mobile=spec.mobile,
        email=f"{spec.username.removeprefix('demo_')}@{EMAIL_DOMAIN}",
        password_hash=password_hash,
        status=UserStatus.ACTIVE,
        department_id=department_ids[spec.department],
    )


def category_nodes() -> list[TreeNode]:
    nodes: list[TreeNode] = []
    for top_sort, top in enumerate(CATALOG, start=1):
        nodes.append(TreeNode(top.name, None, top_sort * 10))
        nodes.extend(
            TreeNode(leaf.name, top.name, leaf_sort * 10)
            for leaf_sort, leaf in enumerate(top.leaves, start=1)
        )
    return nodes


async def seed_categories() -> dict[str, int]:
    async with seeding_transaction():
        return await ensure_tree(Category, category_nodes())


async def seed_products(category_ids: Mapping[str, int]) -> None:
    async with seeding_transaction():
        await Product.bulk_create(demo_products(category_ids), ignore_conflicts=True)


def demo_products(category_ids: Mapping[str, int]) -> list[Product]:
    """The demo catalogue: the same products, codes and prices on every run."""
    rng = random.Random(PRODUCT_SEED)
    products: list[Product] = []
    for top in CATALOG:
        for leaf in top.leaves:
            combos = [(item, rank) for item in leaf.items for rank in range(len(leaf.variants))]
            for (brand, model, list_price), rank in rng.sample(combos, PRODUCTS_PER_LEAF):
                code = f"SKU-{len(products) + 1:04d}"
                price = shelf_price(
                    list_price * (1 + VARIANT_STEP * rank) * rng.uniform(*PRICE_SPREAD)
                )
                product = Product(
                    code=code,
                    name=f"{brand} {model} {leaf.variants[rank]}",
                    category_id=category_ids[leaf.name],
                    description=f"{brand} {model}，{rng.choice(top.blurbs)}",
                    images=demo_images(code, rng.randint(1, MAX_IMAGES)),
                    channels=list(weighted(rng, CHANNEL_CHOICES)),
                    status=weighted(rng, STATUS_CHOICES),
                    price=price,
                    cost=demo_cost(price, rng.uniform(*top.cost_ratio)),
                )
                set_stock(product, rng)
                products.append(product)
    return products


def demo_images(code: str, count: int) -> list[str]:
    return [f"/static/demo/{code}-{n}.jpg" for n in range(1, count + 1)]


def weighted(rng: random.Random, choices: Sequence[tuple[T, int]]) -> T:
    return rng.choices([value for value, _ in choices], [weight for _, weight in choices])[0]


def shelf_price(yuan: float) -> int:
    """A price as shops print it, in fen: 39.90, 299.00, 5999.00."""
    if yuan < 100:
        return int(yuan) * 100 + 90
    if yuan < 1000:
        return (round(yuan / 10) * 10 - 1) * 100
    return (round(yuan / 100) * 100 - 1) * 100


def demo_cost(price: int, ratio: float) -> int:
    """Always at least one fen below the price, so every demo product has a margin."""
    return max(1, min(price - 1, round(price * ratio)))


def set_stock(product: Product, rng: random.Random) -> None:
    sold_out = rng.random() < SOLD_OUT_SHARE
    product.stock = 0 if sold_out else rng.randint(1, MAX_STOCK)
    never_sold = product.status == ProductStatus.DRAFT
    product.sales = 0 if never_sold else min(MAX_SALES, int(rng.expovariate(1 / MEAN_SALES)))


async def seed_members() -> None:
    async with seeding_transaction():
        await Member.bulk_create(demo_members(), ignore_conflicts=True)


def demo_members() -> list[Member]:
    """The demo shoppers: the same names, mobiles and spend on every run; joined last year."""
    rng = random.Random(MEMBER_SEED)
    taken = {spec.mobile for spec in STAFF}
    joined_before = datetime.now(UTC)
    members: list[Member] = []
    for number in range(1, MEMBER_COUNT + 1):
        mobile = unique_mobile(rng, taken)
        formal = rng.random() < FORMAL_SHARE
        spent = log_uniform(rng, *MEMBER_SPEND_FEN) if formal else 0
        members.append(
            Member(
                mobile=mobile,
                name=rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES),
                avatar=f"/static/demo/avatar-{number:03d}.jpg",
                condition=MemberCondition.FORMAL if formal else MemberCondition.POTENTIAL,
                total_spent=spent,
                points=spent // FEN_PER_POINT,
                level=member_level(spent),
                created_at=joined_before - timedelta(minutes=rng.randint(60, 365 * 24 * 60)),
            )
        )
    return members


def unique_mobile(rng: random.Random, taken: set[str]) -> str:
    while True:
        mobile = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        if mobile not in taken:
            taken.add(mobile)
            return mobile


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Spread over orders of magnitude: many small spenders, a few big ones."""
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def member_level(total_spent: int) -> int:
    return sum(1 for threshold in LEVEL_THRESHOLDS[1:] if total_spent >= threshold)
