-- Demo data for ofertasws: 7,800 offers from 41 Panamanian merchants, of which exactly
-- 7,000 are live (active, started, not ended) and 800 are not:
--   300 inactive (active = false), 300 expired (ended yesterday or earlier),
--   200 not started yet (start tomorrow or later).
--
-- Idempotent: truncates `ofertas` and inserts everything again. Deterministic: every
-- value is derived from the series index n (no random()). Times are anchored at today's
-- midnight in America/Panama, so seeding twice on the same day produces identical rows
-- (and the next refresh reports `unchanged`). Live offers end at the earliest at 23:59
-- tomorrow (Panama time), so the 7,000 stay live for at least a day after seeding.
--
-- Run after the migrations:
--   psql -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 55432 -U postgres -d ofertasws -f scripts/seed.sql
-- Benchmarks scale it with `-v live=N`: N × 78/70 rows in the same proportions (exactly
-- 7,000 live for the default; about N live otherwise).

\set ON_ERROR_STOP on
\if :{?live}
\else
\set live 7000
\endif
select (:live::bigint * 78 / 70) as total_rows \gset

begin;

truncate table ofertas;

insert into ofertas (id, merchant_id, merchant_name, title, description, category, price,
                     original_price, currency, image_url, starts_at, ends_at, active, updated_at)
with
anchor as (
    -- today's midnight, Panama time (UTC-5, no DST)
    select (date_trunc('day', now() at time zone 'America/Panama') at time zone 'America/Panama') as t0
),
merchants (slot, merchant_id, merchant_name, category) as (values
    ( 0, 1001, 'Super 99',                        'Supermercados'),
    ( 1, 1002, 'Riba Smith',                      'Supermercados'),
    ( 2, 1003, 'Supermercados El Rey',            'Supermercados'),
    ( 3, 1004, 'Super Xtra',                      'Supermercados'),
    ( 4, 1005, 'PriceSmart',                      'Supermercados'),
    ( 5, 1006, 'Supermercados Romero',            'Supermercados'),
    ( 6, 1011, 'Farmacias Arrocha',               'Salud'),
    ( 7, 1012, 'Farmacias Metro',                 'Salud'),
    ( 8, 1013, 'Farmacia Revilla',                'Salud'),
    ( 9, 1021, 'El Machetazo',                    'Hogar'),
    (10, 1022, 'Do it Center',                    'Hogar'),
    (11, 1023, 'Novey',                           'Hogar'),
    (12, 1024, 'Cochez',                          'Hogar'),
    (13, 1031, 'Panafoto',                        'Tecnología'),
    (14, 1032, 'Multimax',                        'Tecnología'),
    (15, 1033, 'Audiofoto',                       'Tecnología'),
    (16, 1034, 'Omega Electronics',               'Tecnología'),
    (17, 1041, 'Conway',                          'Moda'),
    (18, 1042, 'Stevens',                         'Moda'),
    (19, 1043, 'Felix B. Maduro',                 'Moda'),
    (20, 1051, 'Cinépolis',                       'Entretenimiento'),
    (21, 1052, 'Cinemark',                        'Entretenimiento'),
    (22, 1053, 'Ticketplus',                      'Entretenimiento'),
    (23, 1061, 'Copa Airlines',                   'Viajes'),
    (24, 1062, 'Hotel Decameron',                 'Viajes'),
    (25, 1063, 'Panama Canal Railway',            'Viajes'),
    (26, 1071, 'Niko''s Café',                    'Restaurantes'),
    (27, 1072, 'Pío Pío',                         'Restaurantes'),
    (28, 1073, 'Café Unido',                      'Restaurantes'),
    (29, 1074, 'Restaurante Tinajas',             'Restaurantes'),
    (30, 1075, 'Don Lee',                         'Restaurantes'),
    (31, 1081, 'Perfumes Factory',                'Belleza'),
    (32, 1082, 'Spa Bella Vista',                 'Belleza'),
    (33, 1091, 'Sportline America',               'Deportes'),
    (34, 1092, 'Mundo Deportivo',                 'Deportes'),
    (35, 1101, 'Berlitz Panamá',                  'Educación'),
    (36, 1102, 'Librería El Hombre de la Mancha', 'Educación'),
    (37, 1111, 'Importadora Ricamar',             'Automotriz'),
    (38, 1112, 'Autopartes El Dorado',            'Automotriz'),
    (39, 1121, 'Melo Pet & Garden',               'Mascotas'),
    (40, 1122, 'Veterinaria Mi Mascota',          'Mascotas')
),
products (category, pos, name, base_price) as (values
    ('Supermercados',   1, 'Arroz Gallo Pinto 5 lb',             4.25),
    ('Supermercados',   2, 'Café Durán molido 425 g',            6.49),
    ('Supermercados',   3, 'Aceite vegetal 1 galón',            11.95),
    ('Supermercados',   4, 'Pollo entero fresco por libra',      1.39),
    ('Supermercados',   5, 'Leche Estrella Azul 1/2 galón',      2.95),
    ('Supermercados',   6, 'Combo desayuno familiar',           18.50),
    ('Supermercados',   7, 'Detergente líquido 3 L',             9.99),
    ('Supermercados',   8, 'Frutas y verduras del día',          7.80),
    ('Salud',           1, 'Vitamina C 1000 mg 100 tabletas',   14.90),
    ('Salud',           2, 'Protector solar FPS 50',            16.75),
    ('Salud',           3, 'Tensiómetro digital de brazo',      39.99),
    ('Salud',           4, 'Pañales etapa 3, paquete 80',       21.50),
    ('Salud',           5, 'Prueba de glucosa, 50 tiras',       27.00),
    ('Salud',           6, 'Multivitamínico familiar',          12.40),
    ('Hogar',           1, 'Juego de sábanas queen',            34.99),
    ('Hogar',           2, 'Licuadora de 10 velocidades',       49.95),
    ('Hogar',           3, 'Abanico de pedestal 18"',           39.90),
    ('Hogar',           4, 'Taladro inalámbrico 20 V',          89.00),
    ('Hogar',           5, 'Pintura blanca 5 galones',          74.50),
    ('Hogar',           6, 'Juego de ollas de 10 piezas',       99.00),
    ('Hogar',           7, 'Aire acondicionado 12,000 BTU',    429.00),
    ('Tecnología',      1, 'Smart TV 55" 4K',                  549.00),
    ('Tecnología',      2, 'Laptop 15" 16 GB RAM',             799.00),
    ('Tecnología',      3, 'Audífonos inalámbricos',            79.99),
    ('Tecnología',      4, 'Celular 128 GB',                   329.00),
    ('Tecnología',      5, 'Consola de videojuegos',           499.00),
    ('Tecnología',      6, 'Tablet 10" con funda',             189.00),
    ('Tecnología',      7, 'Impresora multifuncional',         119.00),
    ('Moda',            1, 'Jeans de caballero',                29.99),
    ('Moda',            2, 'Vestido de verano',                 34.50),
    ('Moda',            3, 'Zapatillas casuales',               45.00),
    ('Moda',            4, 'Camisa guayabera de lino',          39.00),
    ('Moda',            5, 'Uniforme escolar completo',         24.99),
    ('Moda',            6, 'Cartera de cuero',                  59.00),
    ('Entretenimiento', 1, 'Entrada 2D + combo de palomitas',   11.50),
    ('Entretenimiento', 2, 'Martes de cine 2x1',                 7.00),
    ('Entretenimiento', 3, 'Sala VIP para dos personas',        24.00),
    ('Entretenimiento', 4, 'Boleto para concierto',             65.00),
    ('Entretenimiento', 5, 'Pase familiar al parque',           40.00),
    ('Viajes',          1, 'Vuelo Panamá–Bogotá ida y vuelta', 289.00),
    ('Viajes',          2, 'Vuelo Panamá–Miami ida y vuelta',  349.00),
    ('Viajes',          3, 'Noche todo incluido en Farallón',  180.00),
    ('Viajes',          4, 'Paseo en tren por el Canal',        65.00),
    ('Viajes',          5, 'Fin de semana en Boquete',         210.00),
    ('Restaurantes',    1, 'Almuerzo ejecutivo',                 7.50),
    ('Restaurantes',    2, 'Pollo a la brasa familiar',         15.99),
    ('Restaurantes',    3, 'Café y pastel del día',              4.75),
    ('Restaurantes',    4, 'Cena típica para dos',              32.00),
    ('Restaurantes',    5, 'Sancocho y arroz con pollo',         8.25),
    ('Restaurantes',    6, 'Combo de hojaldres y café',          5.50),
    ('Belleza',         1, 'Perfume 100 ml',                    69.00),
    ('Belleza',         2, 'Masaje relajante de 60 minutos',    55.00),
    ('Belleza',         3, 'Manicure y pedicure',               25.00),
    ('Belleza',         4, 'Kit de maquillaje',                 38.50),
    ('Belleza',         5, 'Tratamiento facial hidratante',     45.00),
    ('Deportes',        1, 'Tenis para correr',                 89.99),
    ('Deportes',        2, 'Balón de fútbol profesional',       29.99),
    ('Deportes',        3, 'Bicicleta de montaña',             349.00),
    ('Deportes',        4, 'Mancuernas ajustables',             79.00),
    ('Deportes',        5, 'Camiseta de la selección',          49.99),
    ('Educación',       1, 'Curso de inglés de 3 meses',       240.00),
    ('Educación',       2, 'Libros escolares, combo primaria',  65.00),
    ('Educación',       3, 'Taller de Excel avanzado',          90.00),
    ('Educación',       4, 'Novela más vendida',                18.95),
    ('Automotriz',      1, 'Cambio de aceite sintético',        49.00),
    ('Automotriz',      2, 'Juego de 4 llantas rin 16',        399.00),
    ('Automotriz',      3, 'Batería para auto 12 V',           119.00),
    ('Automotriz',      4, 'Alineación y balanceo',             35.00),
    ('Automotriz',      5, 'Lavado y encerado completo',        25.00),
    ('Mascotas',        1, 'Alimento para perro 15 kg',         54.99),
    ('Mascotas',        2, 'Arena para gato 10 kg',             12.99),
    ('Mascotas',        3, 'Baño y corte para perro',           22.00),
    ('Mascotas',        4, 'Vacuna antirrábica',                15.00),
    ('Mascotas',        5, 'Cama para mascota mediana',         32.50)
),
catalog as (
    select p.*, count(*) over (partition by p.category) as in_category from products p
),
places (pos, place) as (values
    (0, 'Albrook Mall'), (1, 'Multiplaza'), (2, 'Costa del Este'), (3, 'El Dorado'),
    (4, 'Los Pueblos'), (5, 'Brisas del Golf'), (6, 'La Chorrera'), (7, 'David'),
    (8, 'Santiago'), (9, 'Chitré'), (10, 'Colón'), (11, 'San Francisco')
),
series as (
    -- n % 78 splits 1..7800 into 78 classes of exactly 100 offers each:
    -- 3 classes inactive, 3 expired, 2 future, the other 70 (7,000 offers) live.
    select n,
           case when n % 78 in (7, 33, 59)  then 'inactive'
                when n % 78 in (14, 40, 66) then 'expired'
                when n % 78 in (21, 47)     then 'future'
                else 'live' end as kind,
           -- discount in percent: none for 1 in 5 offers, 0 for 1 in 50, else 10..60
           case when n % 5 = 0 then null
                when n % 50 = 3 then 0
                else 10 + (n * 7) % 51 end as discount,
           -- the offer's reference price varies 85%..115% around the product's base price
           0.85 + ((n * 13) % 31) / 100.0 as variation
    from generate_series(1, :total_rows) as g (n)
),
priced as (
    select s.*, m.merchant_id, m.merchant_name, m.category, c.name, pl.place,
           round(c.base_price * s.variation, 2) as reference,
           round(c.base_price * s.variation * (100 - coalesce(s.discount, 0)) / 100, 2) as raw_price
    from series s
    join merchants m on m.slot = s.n % 41
    join catalog c on c.category = m.category and c.pos = (s.n / 41) % c.in_category + 1
    join places pl on pl.pos = (s.n / 7) % 12
),
timed as (
    select p.*,
           case p.kind
               when 'expired' then a.t0 - make_interval(days => 20 + p.n % 30)
               when 'future'  then a.t0 + make_interval(days => 1 + p.n % 20)
               else a.t0 - make_interval(days => 1 + p.n % 30, hours => (p.n % 3) * 6)
           end as starts_at,
           case p.kind
               when 'expired' then a.t0 - make_interval(days => 1 + p.n % 15, mins => 1)
               when 'future'  then case when p.n % 4 = 1 then null
                                        else a.t0 + make_interval(days => 31 + p.n % 20, mins => -1) end
               else case when p.n % 4 = 1 then null   -- a quarter are open-ended
                         else a.t0 + make_interval(days => 2 + (p.n * 11) % 45, mins => -1) end
           end as ends_at,
           a.t0
    from priced p cross join anchor a
)
select
    n as id,
    merchant_id,
    merchant_name,
    name as title,
    case n % 8
        when 0 then 'Válido en ' || place || '. Hasta agotar existencias.'
        when 1 then 'Paga con Yappy y recibe 5% adicional.'
        when 3 then 'Precio especial en ' || merchant_name || ' ' || place || '.'
        when 4 then 'Máximo 4 unidades por cliente.'
        when 6 then 'Compra en línea y recoge en ' || place || '.'
        when 7 then 'Aplica con tarjetas Clave y de crédito.'
        else null                                   -- a quarter have no description
    end as description,
    category,
    -- a third of the prices end in .99 (always below the computed price)
    case when n % 3 = 0 and raw_price >= 2 then floor(raw_price) - 0.01 else raw_price end as price,
    case when discount is null then null else reference end as original_price,
    'USD' as currency,
    case when n % 7 = 3 then null                   -- one in seven has no image
         else 'https://img.ofertasws.pa/o/' || n || '.jpg' end as image_url,
    starts_at,
    ends_at,
    kind <> 'inactive' as active,
    -- last edited between the start and now, never in the future
    least(starts_at + make_interval(hours => n % 96), t0) as updated_at
from timed
order by n;

commit;

analyze ofertas;
